package redisstore

// EscapeGlob lets the tests scan their own prefix as the store does.
var EscapeGlob = escapeGlob
