"""Conversations 01-29: the ordinary shapes of each mail client."""
from gen_conversations import Conv, SUPPORT, BILLING, quote, enc


def opening(c, client, label, cust, name, subject, body, n0=1, agent=7, via="new", **kw):
    """A customer writes in; we acknowledge; the agent is notified and
    answers through the signed reply address; the answer is relayed."""
    first = c.add(client, label, cust, [SUPPORT], subject, body, via=via, name=name, **kw)
    ack = c.ack(label, first, n0)
    note = c.notify(label, first, n0 + 1, agent=agent)
    c.agent_reply(label, note, agent, "Hi %s, thanks. Could you send the order number?" % name.split()[0])
    ans = c.answer(label, first, n0 + 2, "Hi %s,\n\ncould you send us the order number?" % name.split()[0], agent=agent)
    return first, ack, note, ans


def build():
    convs = []

    c = Conv("01-gmail-basic", "Gmail customer, full cycle: ack, agent via signed address, customer replies with References.", (2026, 1, 5, 9, 12))
    f, ack, note, ans = opening(c, "gmail", "A", "jana.novak@gmail.com", "Jana Novak", "Cannot log in after password reset",
                                "Hi,\n\nsince I reset my password yesterday I cannot log in. The page says 'invalid token'.\n\nJana")
    r = c.reply("gmail", "A", "jana.novak@gmail.com", ans, "It is 10-4471.\n\nOn Mon, Jan 5 Lena wrote:\n" + quote("could you send us the order number?"), "in-reply-to", name="Jana Novak")
    n2 = c.notify("A", r, 4)
    c.agent_reply("A", n2, 7, "Reset the token on our side, customer should try again.", purpose="note")
    c.agent_reply("A", n2, 7, "Jana, I reset the login token. Please try again.")
    a2 = c.answer("A", r, 5, "Jana, I reset the login token. Please try again.")
    c.reply("gmail", "A", "jana.novak@gmail.com", a2, "Works now, thank you!", "in-reply-to", name="Jana Novak")
    convs.append(c)

    c = Conv("02-gmail-long-chain", "Gmail back and forth, References grow with every reply; top-posted.", (2026, 1, 6, 14, 2))
    f, ack, note, ans = opening(c, "gmail", "A", "p.okafor@gmail.com", "Peter Okafor", "Export to CSV drops the last column",
                                "When I export the report to CSV, the 'Total' column is missing.")
    prev = ans
    for i in range(4):
        r = c.reply("gmail", "A", "p.okafor@gmail.com", prev, ["Sure, here it is.", "Still broken with the new version.", "Tried Firefox too, same.", "Ok, waiting."][i] + "\n\n" + quote("previous mail"), "in-reply-to", name="Peter Okafor")
        prev = c.answer("A", r, 10 + i, ["Thanks, looking.", "Can you try another browser?", "We found the bug.", "Fixed in 4.2.1."][i])
    c.reply("gmail", "A", "p.okafor@gmail.com", prev, "Confirmed fixed. Thanks!", "in-reply-to", name="Peter Okafor")
    convs.append(c)

    c = Conv("03-gmail-bottom-posted", "Gmail reply written under the quote (bottom-posted) with trimmed quote.", (2026, 1, 7, 8, 40))
    f, ack, note, ans = opening(c, "gmail", "A", "ravi.k@gmail.com", "Ravi Kumar", "Invoice address wrong", "The address on invoice 2291 is my old one.", tz=None)
    c.reply("gmail", "A", "ravi.k@gmail.com", ans, quote("could you send us the order number?") + "\n\nIt is 88-1200.\n\nRavi", "in-reply-to", name="Ravi Kumar")
    convs.append(c)

    c = Conv("04-apple-mail", "Apple Mail on macOS: Message-Id with an uppercase UUID, In-Reply-To before References.", (2026, 1, 8, 17, 5))
    f, ack, note, ans = opening(c, "apple", "A", "claire.dubois@me.com", "Claire Dubois", "Sync stops after 10 minutes", "The desktop app stops syncing after about ten minutes.")
    r = c.reply("apple", "A", "claire.dubois@me.com", ans, "Order 55-0192.\n\n> On 8 Jan 2026, at 18:05, Acme Support wrote:\n" + quote("could you send"), "in-reply-to", name="Claire Dubois")
    a2 = c.answer("A", r, 4, "Please update to 3.8.")
    c.reply("apple", "A", "claire.dubois@me.com", a2, "Updated, seems fine.", "in-reply-to", name="Claire Dubois")
    convs.append(c)

    c = Conv("05-iphone", "iPhone Mail: terse replies, 'Sent from my iPhone', Mime-Version 1.0 (1.0).", (2026, 1, 9, 7, 30))
    f, ack, note, ans = opening(c, "iphone", "A", "tom.h@icloud.com", "Tom Hale", "App crashes on start", "Since the update the app crashes right away.\n\nSent from my iPhone")
    r = c.reply("iphone", "A", "tom.h@icloud.com", ans, "No order, it's the free plan\n\nSent from my iPhone", "in-reply-to")
    c.reply("iphone", "A", "tom.h@icloud.com", ack, "Also: iOS 17.3\n\nSent from my iPhone", "in-reply-to")
    convs.append(c)

    c = Conv("06-thunderbird", "Thunderbird: References folded over lines, subject keeps our tag.", (2026, 1, 10, 11, 0))
    f, ack, note, ans = opening(c, "thunderbird", "A", "m.schulz@posteo.de", "Markus Schulz", "SMTP relay rejects attachments over 5 MB", "Our relay rejects attachments over 5 MB, yours says 25.")
    r = c.reply("thunderbird", "A", "m.schulz@posteo.de", ans, "Order 31-7781.\n\nOn 10.01.26 12:00, Acme Support wrote:\n" + quote("order number?"), "in-reply-to", name="Markus Schulz")
    a2 = c.answer("A", r, 4, "The limit is per message, including encoding overhead.")
    c.reply("thunderbird", "A", "m.schulz@posteo.de", a2, "Makes sense, thanks.", "in-reply-to", name="Markus Schulz")
    convs.append(c)

    c = Conv("07-android-gmail", "Gmail app on Android, with a second customer mail before any answer (replying to the ack).", (2026, 1, 11, 19, 45))
    f = c.add("android", "A", "lucia.romero@gmail.com", [SUPPORT], "Refund for order 77-1001", "I returned the parcel two weeks ago.\n\nEnviado desde mi Android", via="new", name="Lucía Romero")
    ack = c.ack("A", f)
    c.reply("android", "A", "lucia.romero@gmail.com", ack, "Tracking number is JJD0001234.\n\nEnviado desde mi Android", "in-reply-to", name="Lucía Romero")
    note = c.notify("A", f, 2)
    c.agent_reply("A", note, 7, "Refund issued.")
    ans = c.answer("A", f, 3, "Refund issued, 3-5 days.")
    c.reply("android", "A", "lucia.romero@gmail.com", ans, "Gracias!", "in-reply-to", name="Lucía Romero")
    convs.append(c)

    c = Conv("08-yahoo", "Yahoo Mail web client.", (2026, 1, 12, 10, 10))
    f, ack, note, ans = opening(c, "yahoo", "A", "bgreen55@yahoo.com", "Bob Green", "Charged twice this month", "My card was charged twice.")
    c.reply("yahoo", "A", "bgreen55@yahoo.com", ans, "Order 12-9987", "in-reply-to", name="Bob Green")
    convs.append(c)

    c = Conv("09-mutt", "Mutt: bottom-posted, plain text, Message-ID from the local host.", (2026, 1, 13, 23, 15))
    f, ack, note, ans = opening(c, "mutt", "A", "ak@zeta.example.org", "Arne K", "API returns 502 on /v2/items", "curl https://api.acme.example/v2/items gives 502 since 22:00 UTC.")
    c.reply("mutt", "A", "ak@zeta.example.org", ans, "* Acme Support <support@acme.example> [2026-01-14 09:00]:\n" + quote("order number?") + "\n\nNo order, account zeta-ops.", "in-reply-to")
    convs.append(c)

    c = Conv("10-outlook-365", "Outlook on Microsoft 365: RE: prefix, Thread-Index plus References.", (2026, 1, 14, 8, 3), tz="utc")
    f, ack, note, ans = opening(c, "outlook", "A", "h.meier@meier-gmbh.example", "Hanna Meier", "License transfer to new laptop", "We need to move our license to a new laptop.")
    r = c.reply("outlook", "A", "h.meier@meier-gmbh.example", ans, "Order 40-2230.\n\nFrom: Acme Support <support@acme.example>\nSent: Wednesday, January 14, 2026 11:20\n" + quote("order number"), "in-reply-to", prefix="RE: ", name="Hanna Meier")
    a2 = c.answer("A", r, 4, "Done, deactivate the old one first.")
    c.reply("outlook", "A", "h.meier@meier-gmbh.example", a2, "Thanks!", "in-reply-to", prefix="RE: ", name="Hanna Meier")
    convs.append(c)

    c = Conv("11-exchange-no-references", "On-premises Exchange strips In-Reply-To and References; only Thread-Index survives. Our tag is in the subject, so the tag (sender on ticket) decides.", (2026, 1, 15, 9, 0), tz="utc")
    f, ack, note, ans = opening(c, "exchange", "A", "k.lindqvist@lindqvist.example", "Karin Lindqvist", "Backup job fails nightly", "Backup job #4 fails every night with error 0x80070005.")
    r = c.reply("exchange", "A", "k.lindqvist@lindqvist.example", ans, "Order 61-0001.\n\n-----Original Message-----\nFrom: Acme Support", "subject-tag", prefix="RE: ", name="Karin Lindqvist")
    a2 = c.answer("A", r, 4, "Please run the job as the service account.")
    c.reply("exchange", "A", "k.lindqvist@lindqvist.example", a2, "That fixed it.", "subject-tag", prefix="RE: ", name="Karin Lindqvist")
    convs.append(c)

    c = Conv("12-exchange-thread-index-only", "Exchange without References; the customer follows up on her own sent mail (no tag): only Thread-Index joins it.", (2026, 1, 16, 13, 0), tz="utc")
    f = c.add("exchange", "A", "s.berg@bergsten.example", [SUPPORT], "Printer driver for model X200", "Where can I download the X200 driver for Windows 11?", via="new", name="Sofia Berg")
    ack = c.ack("A", f)
    c.reply("exchange", "A", "s.berg@bergsten.example", f, "Sorry, forgot: 64-bit.\n\n-----Original Message-----", "thread-index", prefix="RE: ", name="Sofia Berg")
    c.reply("exchange", "A", "s.berg@bergsten.example", f, "Any news?\n\n-----Original Message-----", "thread-index", prefix="RE: ", name="Sofia Berg")
    convs.append(c)

    c = Conv("13-outlook-german-aw", "German Outlook: AW: and WG:, no References, tag kept.", (2026, 1, 17, 10, 30), tz="cet")
    f, ack, note, ans = opening(c, "exchange", "A", "j.wagner@wagner-bau.example", "Jürgen Wagner", enc("Rechnung 2026-014 doppelt erhalten – bitte prüfen"), "Wir haben die Rechnung doppelt erhalten.")
    r = c.reply("exchange", "A", "j.wagner@wagner-bau.example", ans, "Bestellung 10-5521.\n\n-----Ursprüngliche Nachricht-----\nVon: Acme Support", "subject-tag", prefix="AW: ", name="Jürgen Wagner")
    a2 = c.answer("A", r, 4, "Die zweite Rechnung ist storniert.")
    c.reply("exchange", "A", "j.wagner@wagner-bau.example", a2, "Danke.", "subject-tag", prefix="AW: ", name="Jürgen Wagner")
    convs.append(c)

    c = Conv("14-outlook-swedish-sv", "Swedish Outlook desktop: SV:, Thread-Index and References.", (2026, 1, 18, 8, 15))
    f, ack, note, ans = opening(c, "outlook-desktop", "A", "erik.nilsson@nilsson.example", "Erik Nilsson", enc("Fakturan saknar moms"), "Fakturan saknar momsregistreringsnummer.")
    r = c.reply("outlook-desktop", "A", "erik.nilsson@nilsson.example", ans, "Order 22-3344.\n\nFrån: Acme Support", "in-reply-to", prefix="SV: ", name="Erik Nilsson")
    convs.append(c)

    c = Conv("15-outlook-subject-changed", "Outlook reply to her own mail with a new subject and no tag: Thread-Index joins.", (2026, 1, 19, 15, 0), tz="utc")
    f = c.add("exchange", "A", "anna.k@kowalska.example", [SUPPORT], "VPN client disconnects", "The VPN client disconnects every 5 minutes.", via="new", name="Anna Kowalska")
    ack = c.ack("A", f)
    c.add("exchange", "A", "anna.k@kowalska.example", [SUPPORT], "RE: VPN logs attached", "Logs attached.\n\n-----Original Message-----", via="thread-index", parent=f, name="Anna Kowalska")
    convs.append(c)

    c = Conv("16-subject-fallback", "A web client that keeps nothing: no References, no tag, no Thread-Index. Same sender and subject within the window join.", (2026, 1, 20, 9, 0))
    f = c.add("generic", "A", "li.wei@163.example", [SUPPORT], "Unable to change billing currency", "I want to change the currency to EUR.", via="new")
    c.ack("A", f)
    c.add("generic", "A", "li.wei@163.example", [SUPPORT], "Re: Unable to change billing currency", "Any update?", via="subject", hours=30)
    c.add("generic", "A", "li.wei@163.example", [SUPPORT], "RE: RE: Unable to change billing currency", "Hello?", via="subject", hours=40)
    convs.append(c)

    c = Conv("17-generic-subject-no-join", "Two mails titled 'Help' from the same sender without any header evidence stay apart: the subject is too generic.", (2026, 1, 21, 9, 0))
    f = c.add("generic", "A", "maria.s@mailbox.example", [SUPPORT], "Help", "My account is locked.", via="new")
    c.ack("A", f)
    c.add("generic", "B", "maria.s@mailbox.example", [SUPPORT], "help", "How do I add a user?", via="new", hours=5)
    c.add("generic", "C", "maria.s@mailbox.example", [SUPPORT], "(no subject)", "", via="new", hours=5)
    convs.append(c)

    c = Conv("18-subject-window-expired", "Same sender and subject three weeks later, outside the 7-day window: a new ticket.", (2026, 1, 22, 9, 0))
    f = c.add("generic", "A", "n.ito@ito-shoji.example", [SUPPORT], "Quarterly report missing", "Q4 report missing.", via="new")
    c.ack("A", f)
    c.add("generic", "B", "n.ito@ito-shoji.example", [SUPPORT], "Quarterly report missing", "Q1 report missing now.", via="new", hours=24 * 21)
    convs.append(c)

    c = Conv("19-resolved-recently", "The ticket was resolved two days ago; the customer writes a fresh mail with the same subject: it joins (recently resolved).", (2026, 1, 23, 9, 0))
    f, ack, note, ans = opening(c, "gmail", "A", "owen.price@gmail.com", "Owen Price", "Webhook retries flood our endpoint", "Your webhooks retry 50 times a minute.")
    c.event("state", "A", "resolved")
    c.add("gmail", "A", "owen.price@gmail.com", [SUPPORT], "Webhook retries flood our endpoint", "It is happening again.", via="subject", name="Owen Price", hours=48)
    convs.append(c)

    c = Conv("20-reply-changes-subject", "Gmail reply where the customer rewrote the subject; References still join.", (2026, 1, 24, 9, 0))
    f, ack, note, ans = opening(c, "gmail", "A", "fatima.z@gmail.com", "Fatima Zahra", "Question about plans", "Do you have an education discount?")
    c.reply("gmail", "A", "fatima.z@gmail.com", ans, "Actually, different question: can I pay yearly?", "in-reply-to", subject="Yearly payment?", name="Fatima Zahra")
    convs.append(c)

    c = Conv("21-second-address-with-references", "The customer answers from her private address; References to our mail is strong, so it joins.", (2026, 1, 25, 9, 0))
    f, ack, note, ans = opening(c, "outlook", "A", "e.fischer@fischer-ag.example", "Eva Fischer", "SSO certificate expires soon", "Our SSO certificate expires on Friday.")
    c.reply("gmail", "A", "eva.fischer.private@gmail.com", ans, "Writing from home: order 33-0099.", "in-reply-to", name="Eva Fischer")
    convs.append(c)

    c = Conv("22-second-address-subject-only", "The same person writes from another address with the same subject and nothing else: never joined by subject alone.", (2026, 1, 26, 9, 0))
    f = c.add("gmail", "A", "d.costa@costa-lda.example", [SUPPORT], "Shipping label not printing", "Labels print blank.", via="new", name="Diogo Costa")
    c.ack("A", f)
    c.add("gmail", "B", "diogo.costa@gmail.com", [SUPPORT], "Shipping label not printing", "Same problem, from my phone.", via="new", name="Diogo Costa")
    convs.append(c)

    c = Conv("23-second-address-tag-only", "The same person writes from another address with our tag but no References: the tag is ignored (sender not on ticket).", (2026, 1, 27, 9, 0))
    f = c.add("thunderbird", "A", "g.rossi@rossi-srl.example", [SUPPORT], "Cannot add team members", "The invite button is grey.", via="new", name="Giulia Rossi")
    ack = c.ack("A", f)
    c.add("thunderbird", "B", "giulia.rossi@libero.example", [SUPPORT], "Re: [Acme #{{ticket A}}] Cannot add team members", "Private address, same issue.", via="new", name="Giulia Rossi")
    convs.append(c)

    c = Conv("24-reply-all-adds-cc", "Reply-all adds a colleague in Cc; the colleague then answers (References) and later writes with the tag: both join, the colleague is a participant.", (2026, 1, 28, 9, 0))
    f, ack, note, ans = opening(c, "gmail", "A", "ops@hollis.example", "Hollis Ops", "Status page shows outage", "Your status page shows an outage in EU-West.")
    r = c.reply("gmail", "A", "ops@hollis.example", ans, "Adding Sam who runs the integration.", "in-reply-to", cc=["sam.t@hollis.example"], name="Hollis Ops")
    a2 = c.answer("A", r, 4, "Thanks, Sam: which region do you use?", cc=["sam.t@hollis.example"])
    c.reply("gmail", "A", "sam.t@hollis.example", a2, "EU-West only.", "in-reply-to", cc=["ops@hollis.example"], name="Sam Tran")
    c.add("outlook", "A", "sam.t@hollis.example", [SUPPORT], "[Acme #{{ticket A}}] one more detail", "We also see it in the API.", via="subject-tag", name="Sam Tran")
    convs.append(c)

    c = Conv("25-outlook-forward-to-colleague", "The customer forwards our answer with Outlook (FW:, no References) to a colleague who writes in with the tag: the colleague is not on the ticket, so a new ticket.", (2026, 1, 29, 9, 0), tz="utc")
    f, ack, note, ans = opening(c, "outlook", "A", "r.jansen@jansen.example", "Ruud Jansen", "Contract renewal terms", "Please send the renewal terms.")
    c.add("exchange", "B", "l.devries@jansen.example", [SUPPORT], "FW: Re: [Acme #{{ticket A}}] Contract renewal terms", "Can you also send them to me?\n\n-----Original Message-----\nFrom: Ruud Jansen", via="new", name="Lotte de Vries")
    convs.append(c)

    c = Conv("26-gmail-forward-references-ours", "The customer forwards our answer with Gmail, which keeps References; the colleague replies to that forward: References to our outbound mail is strong, it joins.", (2026, 1, 30, 9, 0))
    f, ack, note, ans = opening(c, "gmail", "A", "nora.b@gmail.com", "Nora Bauer", "Team plan seats", "How many seats are in the team plan?")
    # The forward itself goes from Nora to Tim, not to us: it is not in the corpus.
    fw = c.add("gmail", "-", "nora.b@gmail.com", ["tim.b@bauer.example"], "Fwd: Re: [Acme #{{ticket A}}] Team plan seats", "---------- Forwarded message ---------\nFrom: Acme Support", parent=ans, direction="none", name="Nora Bauer")
    c.add("gmail", "A", "tim.b@bauer.example", [SUPPORT, "nora.b@gmail.com"], "Re: Fwd: Re: [Acme #{{ticket A}}] Team plan seats", "I'm Nora's partner, we need 12 seats.", via="references", refs=fw.refs + [fw.mid], irt=fw.mid, name="Tim Bauer")
    convs.append(c)

    c = Conv("27-forward-references-customer-only", "A colleague writes in with References to the customer's own first mail only (the customer forwarded it, not our answer): not strong, a new ticket.", (2026, 1, 31, 9, 0))
    f = c.add("thunderbird", "A", "kim.j@jung.example", [SUPPORT], "Data export request", "Please export all our data.", via="new", name="Kim Jung")
    c.ack("A", f)
    c.add("thunderbird", "B", "park.s@jung.example", [SUPPORT], "Re: Fwd: Data export request", "I also need this, different account.", via="new", refs=[f.mid], irt=f.mid, name="Park Seo")
    convs.append(c)

    c = Conv("28-forged-subject-tag", "A stranger uses another customer's ticket tag to read or write into it: the tag is ignored, evidence says why.", (2026, 2, 1, 9, 0))
    f, ack, note, ans = opening(c, "gmail", "A", "victim.person@gmail.com", "Vic Tim", "Password reset link not arriving", "I do not get the reset link.")
    c.add("generic", "B", "attacker@evil.example", [SUPPORT], "Re: [Acme #{{ticket A}}] Password reset link not arriving", "Please send the link to this address instead.", via="new")
    c.add("generic", "C", "someone@other.example", [SUPPORT], "[#{{ticket A}}] update my email", "Change the email on this ticket to mine.", via="new")
    convs.append(c)

    c = Conv("29-forged-reply-address", "A stranger writes to a made-up signed reply address and to one signed with a retired key: both are rejected.", (2026, 2, 2, 9, 0))
    f, ack, note, ans = opening(c, "gmail", "A", "cust.forge@gmail.com", "Carl Forge", "Cannot download invoice", "The download button does nothing.")
    bad = "reply+{{ticket A}}.7.baaaaaaaaaaaaaaaaaaaa@tend.acme.example"
    c.add("generic", "B", "mallory@evil.example", [bad], "internal", "#assign mallory", via="new", env=[bad])
    c.add("generic", "C", "mallory@evil.example", ["{{reply-retired A 7}}"], "old token", "#resolve", via="new", env=["{{reply-retired A 7}}"])
    convs.append(c)
    return convs
