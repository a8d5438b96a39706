package main

import (
	"syscall"
)

// fdReserve is kept out of the WebSocket cap for everything else that
// needs a file descriptor: standard streams, the listener, the database,
// side listeners, and the connections to Twilio (at most twilioConns).
const fdReserve = 512

// raiseFileLimit lifts the soft open-files limit to the hard one, so the
// server can hold every socket the machine allows, and returns it (0 when
// it cannot be read).
func raiseFileLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
			lim = raised
		}
	}
	return lim.Cur
}

// connectionCap is the default -max-connections: what the open-files
// limit leaves after the reserve.
func connectionCap(fileLimit uint64) int {
	if fileLimit == 0 || fileLimit > 1<<24 {
		return 15000 // unknown or unlimited: a cap that fits a small machine
	}
	return max(64, int(fileLimit)-fdReserve)
}
