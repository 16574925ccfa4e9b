package main

import (
	"fmt"
	"net"
	"os"
	"os/user"
	"strconv"

	"github.com/tendhq/tend/cmd/tend/config"
)

// listenDoor opens the SMTP door's TCP listener or the LMTP socket. The
// socket is recreated on every start (a stale one from a crash would make
// the bind fail) and given smtp.lmtp_socket_mode and _group each time, so a
// restart never leaves it unusable for the MTA.
func listenDoor(network, addr string, c config.SMTP) (net.Listener, error) {
	if network != "unix" {
		l, err := net.Listen(network, addr)
		if err != nil {
			return nil, fmt.Errorf("smtp listen %s: %w", addr, err)
		}
		return l, nil
	}
	_ = os.Remove(addr)
	l, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("lmtp listen %s: %w", addr, err)
	}
	if err := socketAccess(addr, os.FileMode(c.LMTPSocketMode), c.LMTPSocketGroup); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("lmtp socket %s: %w", addr, err)
	}
	return l, nil
}

// socketAccess gives a socket its mode and, when group is not "", its group.
func socketAccess(path string, mode os.FileMode, group string) error {
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return fmt.Errorf("smtp.lmtp_socket_group: %w", err)
		}
		gid, err := strconv.Atoi(g.Gid)
		if err != nil {
			return fmt.Errorf("smtp.lmtp_socket_group %s: gid %q: %w", group, g.Gid, err)
		}
		if err := os.Chown(path, -1, gid); err != nil {
			return fmt.Errorf("smtp.lmtp_socket_group %s (tend's user must be a member of it): %w", group, err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("smtp.lmtp_socket_mode %04o: %w", uint32(mode), err)
	}
	return nil
}
