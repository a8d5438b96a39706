package hub

import "testing"

func TestOwnsTellsThisHubsConnectionIDsFromOthers(t *testing.T) {
	h, url := startHub(t, Config{})
	other, otherURL := startHub(t, Config{})
	_, id := subscribeID(t, url, "+1")
	_, otherID := subscribeID(t, otherURL, "+1")

	if !h.Owns(id) {
		t.Errorf("hub does not own its own connection %q", id)
	}
	if h.Owns(otherID) || !other.Owns(otherID) {
		t.Errorf("%q: owned by the hub that did not make it, or not by the one that did", otherID)
	}
	// An id this hub could hand out later is its own too: Owns is about the
	// prefix, not whether the connection is open.
	if !h.Owns(h.idPrefix + "999999") {
		t.Error("hub does not own an id with its prefix")
	}
	for _, id := range []string{"", h.idPrefix, h.idPrefix[:len(h.idPrefix)-1], "x" + id} {
		if h.Owns(id) {
			t.Errorf("hub owns %q", id)
		}
	}
}
