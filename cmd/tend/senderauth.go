package main

import (
	"github.com/tendhq/tend/cmd/tend/config"
	"github.com/tendhq/tend/mail/senderauth"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/threading"
)

// senderAuthOptions are the verifier's options from the sender_auth keys
// and auth_serv_id: local DNS checks when sender_auth.verify is on, the
// trusted authserv-id's Authentication-Results either way. resolver nil
// means the system's DNS.
func senderAuthOptions(cfg config.Config, resolver senderauth.Resolver) senderauth.Options {
	return senderauth.Options{
		Local: cfg.SenderAuth.Verify, AuthServID: cfg.AuthServID, Resolver: resolver, Timeout: cfg.SenderAuth.Timeout,
	}
}

// replySigner is signer whose agent reply addresses expire after
// sender_auth.reply_token_lifetime, by clock.
func replySigner(cfg config.Config, signer *threading.Signer, clock storage.Clock) *threading.Signer {
	return signer.WithReplyLifetime(cfg.SenderAuth.ReplyTokenLifetime, clock)
}

// senderAuth wires the sender_auth keys: the verifier of received mail and
// the signer of expiring reply addresses.
func senderAuth(cfg config.Config, signer *threading.Signer, resolver senderauth.Resolver, clock storage.Clock) (*senderauth.Verifier, *threading.Signer) {
	return senderauth.New(senderAuthOptions(cfg, resolver)), replySigner(cfg, signer, clock)
}
