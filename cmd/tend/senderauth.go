package main

import (
	"github.com/tendhq/tend/cmd/tend/config"
	"github.com/tendhq/tend/mail/senderauth"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/threading"
)

// senderAuth wires the sender_auth keys: the verifier of received mail
// (local DNS checks when sender_auth.verify is on, the trusted
// auth_serv_id's Authentication-Results either way) and the signer whose
// reply addresses expire after sender_auth.reply_token_lifetime by clock.
// resolver nil means the system's DNS.
func senderAuth(cfg config.Config, signer *threading.Signer, resolver senderauth.Resolver, clock storage.Clock) (*senderauth.Verifier, *threading.Signer) {
	v := senderauth.New(senderauth.Options{
		Local: cfg.SenderAuth.Verify, AuthServID: cfg.AuthServID, Resolver: resolver, Timeout: cfg.SenderAuth.Timeout,
	})
	return v, signer.WithReplyLifetime(cfg.SenderAuth.ReplyTokenLifetime, clock)
}
