"""Conversations 30-79: languages and charsets, broken ids, bounces, loops,
lists, merges, attacks and agents."""
from gen_conversations import Conv, SUPPORT, BILLING, quote, enc
from convs_clients import opening

LANGS = [
    # slug, sender, name, tz, (subject, charset, mode), reply prefix (+charset, mode), forward prefix (+charset, mode)
    ("30-german-prefixes", "k.huber@web.example", "Katrin Huber", "cet", ("Lieferung beschädigt angekommen", "iso-8859-1", "q"), ("AW: ", "utf-8", "b"), ("WG: ", "windows-1252", "q")),
    ("31-french-prefixes", "c.martin@orange.example", "Camille Martin", "cet", ("Problème de facturation récurrent", "iso-8859-15", "q"), ("RE : ", "utf-8", "q"), ("TR : ", "utf-8", "b")),
    ("32-spanish-prefixes", "j.garcia@telefonica.example", "Javier García", "cet", ("Devolución pendiente desde marzo", "iso-8859-1", "q"), ("RE: ", "utf-8", "q"), ("RV: ", "windows-1252", "q")),
    ("33-italian-prefixes", "f.bianchi@libero.example", "Francesca Bianchi", "cet", ("Fattura già pagata due volte", "iso-8859-1", "q"), ("R: ", "utf-8", "q"), ("I: ", "utf-8", "q")),
    ("34-polish-prefixes", "t.nowak@wp.example", "Tomasz Nowak", "cet", ("Błąd przy płatności kartą", "iso-8859-2", "q"), ("Odp: ", "utf-8", "b"), ("PD: ", "utf-8", "q")),
    ("35-dutch-prefixes", "s.devries@ziggo.example", "Sanne de Vries", "cet", ("Verzending vertraagd naar België", "iso-8859-1", "q"), ("Antw: ", "utf-8", "q"), ("Doorst: ", "utf-8", "q")),
    ("36-nordic-prefixes", "o.virtanen@elisa.example", "Olli Virtanen", "cet", ("Återbetalning saknas för order", "iso-8859-1", "q"), ("VS: ", "utf-8", "q"), ("VL: ", "utf-8", "q")),
    ("37-turkish-prefixes", "a.yilmaz@turk.example", "Ayşe Yılmaz", "msk", ("Sipariş iptal edilmedi hâlâ", "iso-8859-9", "q"), ("YNT: ", "utf-8", "b"), ("İLT: ", "utf-8", "b")),
    ("38-portuguese-prefixes", "r.souza@uol.example", "Rafael Souza", "brt", ("Cobrança indevida no cartão", "iso-8859-1", "q"), ("RES: ", "utf-8", "q"), ("ENC: ", "utf-8", "q")),
    ("39-chinese-simplified", "wang.fang@qq.example", "王芳", "jst", ("无法登录我的账户", "gb2312", "b"), ("回复：", "utf-8", "b"), ("转发: ", "gb18030", "b")),
    ("40-chinese-traditional", "chen.y@hinet.example", "陳怡君", "jst", ("發票金額錯誤請更正", "big5", "b"), ("回覆: ", "utf-8", "b"), ("轉寄: ", "big5", "b")),
    ("41-japanese", "sato.k@docomo.example", "佐藤健", "jst", ("請求書の再発行について", "iso-2022-jp", "b"), ("ＲＥ：", "iso-2022-jp", "b"), ("転送: ", "shift_jis", "b")),
    ("42-russian", "i.petrova@yandex.example", "Ирина Петрова", "msk", ("Проблема с оплатой заказа", "koi8-r", "b"), ("Ответ: ", "windows-1251", "b"), ("Пересл: ", "utf-8", "q")),
    ("43-greek", "g.pappas@otenet.example", "Γιώργος Παππάς", "msk", ("Πρόβλημα με την παραγγελία", "iso-8859-7", "b"), ("ΑΠ: ", "utf-8", "b"), ("ΠΡΘ: ", "utf-8", "b")),
    ("44-korean", "kim.mj@naver.example", "김민준", "jst", ("환불 요청드립니다", "euc-kr", "b"), ("회신: ", "utf-8", "b"), ("전달: ", "euc-kr", "b")),
]


def build():
    convs = []
    for slug, sender, name, tz, (subj, cs, mode), (rp, rcs, rmode), (fp, fcs, fmode) in LANGS:
        c = Conv(slug, "Customer writes in %s (%s); follow-ups come from a web client that drops References and our tag, with the language's reply and forward prefixes in other charsets: only the normalized subject joins them." % (slug.split("-", 1)[1], cs), (2026, 2, 3 + len(convs), 8, 0), tz=tz)
        f = c.add("generic", "A", sender, [SUPPORT], enc(subj, cs, mode), "Hello, see subject.", via="new", name=name)
        c.ack("A", f)
        c.add("generic", "A", sender, [SUPPORT], enc(rp + subj, rcs, rmode), "Any news?", via="subject", name=name, hours=20)
        c.add("generic", "A", sender, [SUPPORT], enc(fp + rp + subj, fcs, fmode), "Forwarding my earlier mail again.", via="subject", name=name, hours=20)
        convs.append(c)

    c = Conv("45-counted-prefixes", "Counted and stacked prefixes (Re[2]:, Re^3:, Re(4):, list tag) from an old client without References.", (2026, 2, 20, 9, 0))
    f = c.add("generic", "A", "old.timer@vintage.example", [SUPPORT], "Server migration date", "When is the migration?", via="new")
    c.ack("A", f)
    for s in ("Re[2]: Server migration date", "Re^3: Server migration date", "RE(4): Fwd: Server migration date", "Re: [ops-team] Re[5]: server  migration   DATE"):
        c.add("generic", "A", "old.timer@vintage.example", [SUPPORT], s, "ping", via="subject", hours=10)
    convs.append(c)

    c = Conv("46-empty-message-ids", "A broken client sends 'Message-ID: <>' and 'In-Reply-To: <>': the empty id never threads.", (2026, 2, 21, 9, 0))
    f = c.add("generic", "A", "first@brokenclient.example", [SUPPORT], "Order never arrived", "Where is it?", via="new", mid="")
    c.ack("A", f)
    c.add("generic", "B", "second@brokenclient.example", [SUPPORT], "Wrong size delivered", "Size M instead of L.", via="new", mid="", extra=["In-Reply-To: <>", "References: <>"])
    c.add("generic", "C", "third@brokenclient.example", [SUPPORT], "Re: something else entirely", "Unrelated.", via="new", mid="", extra=["In-Reply-To: <>"])
    convs.append(c)

    c = Conv("47-malformed-ids", "Malformed In-Reply-To/References (no @, spaces, empty sides) are ignored; a valid id among junk still threads.", (2026, 2, 22, 9, 0))
    f, ack, note, ans = opening(c, "gmail", "A", "junk.ids@gmail.com", "June Kid", "Two-factor codes delayed", "2FA codes arrive after 10 minutes.")
    c.add("generic", "B", "other.junk@mail.example", [SUPPORT], "New: codes", "x", via="new", extra=["In-Reply-To: foo", "References: <@> <no-at-sign> <a b@c> <@acme.example>"])
    c.add("generic", "A", "junk.ids@gmail.com", [SUPPORT], "Re: Two-factor codes delayed", "still slow", via="references", refs=["<>", "garbage", ans.mid], extra=[])
    convs.append(c)

    c = Conv("48-duplicate-message-ids", "A shop's contact form stamps every mail with the same Message-ID; a reply to it is ambiguous and must not join the other customer's ticket.", (2026, 2, 23, 9, 0))
    dup = "contact-form@shop.example"
    c.add("webform", "A", "amy@customer-one.example", [SUPPORT], "Contact form: delivery time to Austria", "How long to Austria?", via="new", mid=dup)
    c.add("webform", "B", "ben@customer-two.example", [SUPPORT], "Contact form: bulk discount for schools", "Do you offer a school discount?", via="new", mid=dup)
    c.add("generic", "B", "ben@customer-two.example", [SUPPORT], "Re: Contact form: bulk discount for schools", "Forgot: 40 pupils.", via="subject", irt=dup, refs=[dup])
    convs.append(c)

    c = Conv("49-missing-message-id", "A script mails without any Message-ID; replies to our acknowledgement still thread.", (2026, 2, 24, 9, 0))
    f = c.add("generic", "A", "backup-report@nas.example", [SUPPORT], "NAS backup failed: volume1", "Backup of volume1 failed.", via="new", no_mid=True)
    ack = c.ack("A", f)
    c.add("generic", "A", "backup-report@nas.example", [SUPPORT], "Re: [Acme #{{ticket A}}] NAS backup failed: volume1", "Retry also failed.", via="in-reply-to", parent=ack, no_mid=True)
    convs.append(c)

    c = Conv("50-lost-outbound-row", "The row of our acknowledgement was lost (restore from backup); its Message-ID still carries the signed ticket.", (2026, 2, 25, 9, 0))
    f = c.add("gmail", "A", "restore.case@gmail.com", [SUPPORT], "Account deletion request", "Please delete my account.", via="new", name="Rea Store")
    ack = c.ack("A", f, direction="lost")
    c.reply("gmail", "A", "restore.case@gmail.com", ack, "Any update?", "in-reply-to", name="Rea Store")
    convs.append(c)

    c = Conv("51-forged-our-message-id", "A stranger invents a Message-ID on our domain pointing at someone's ticket: its signature fails, a new ticket.", (2026, 2, 26, 9, 0))
    f, ack, note, ans = opening(c, "gmail", "A", "target.cust@gmail.com", "Tara Get", "Refund to wrong card", "Refund went to my old card.")
    fake = "tend.{{ticket A}}.{{ticket A}}001.b" + "q" * 20 + "@tend.acme.example"
    c.add("generic", "B", "eve@evil.example", [SUPPORT], "Re: Refund to wrong card", "Send the refund to IBAN XX00 instead.", via="new", irt=fake, refs=[fake, "tend.1.1.zzz@tend.acme.example"])
    convs.append(c)

    c = Conv("52-bounce-backscatter", "A delivery status notification for mail we never sent (backscatter of a spoofed mail): stored, no ticket.", (2026, 2, 27, 9, 0))
    c.add("generic", "-", "mailer-daemon@mx.faraway.example", [SUPPORT], "Undelivered Mail Returned to Sender", "This is the mail system at host mx.faraway.example.\n\nI'm sorry to have to inform you that your message could not be delivered.", via="bounce", direction="bounce",
          name="Mail Delivery System", extra=["Auto-Submitted: auto-replied", "Content-Description: Notification"])
    c.add("generic", "-", "postmaster@mail.other.example", [SUPPORT], "Delivery Status Notification (Failure)", "Delivery to the following recipients failed.", via="bounce", direction="bounce")
    convs.append(c)

    c = Conv("53-bounce-verp", "Our acknowledgement to a mistyped address bounces to its VERP address: no ticket is opened for the bounce.", (2026, 2, 28, 9, 0))
    f = c.add("gmail", "A", "typo.sender@gmial.example", [SUPPORT], "Need help with import", "CSV import fails.", via="new")
    c.ack("A", f)
    c.add("generic", "-", "mailer-daemon@mx.gmial.example", ["{{bounce 1}}"], "Undelivered Mail Returned to Sender", "550 5.1.1 user unknown", via="bounce", direction="bounce", env=["{{bounce 1}}"], extra=["Auto-Submitted: auto-replied"])
    bad = "bounce+77.b" + "x" * 20 + "@tend.acme.example"
    c.add("generic", "-", "mailer-daemon@mx.spoof.example", [bad], "Undelivered Mail Returned to Sender", "550 user unknown", via="bounce", direction="bounce", env=[bad])
    convs.append(c)

    c = Conv("54-bounce-with-references", "Gmail's mailer-daemon puts In-Reply-To/References of our mail on its bounce: the bounce lands on the ticket (strong evidence).", (2026, 3, 1, 9, 0))
    f, ack, note, ans = opening(c, "gmail", "A", "cc.bounce@gmail.com", "Cee Bounce", "Change of delivery address", "New address: Main St 5.", )
    c.add("gmail", "A", "mailer-daemon@googlemail.com", [SUPPORT], "Delivery Status Notification (Failure)", "Address not found", via="in-reply-to", direction="bounce", parent=ans, name="Mail Delivery Subsystem")
    convs.append(c)

    c = Conv("55-loop-own-address", "Our own mail comes back (a customer's auto-forward, a misconfigured alias): never threaded, never a ticket.", (2026, 3, 2, 9, 0))
    f = c.add("gmail", "A", "loop.cust@gmail.com", [SUPPORT], "Cancel my subscription", "Please cancel.", via="new")
    ack = c.ack("A", f)
    c.add("generic", "-", SUPPORT, [SUPPORT], "[Acme #{{ticket A}}] Cancel my subscription", "thank you for writing to Acme Support", via="loop", parent=ack, name="Acme Support", extra=["Auto-Submitted: auto-replied"])
    c.add("generic", "-", BILLING, [SUPPORT], "Monthly statement", "Statement attached.", via="loop")
    c.add("generic", "-", "reply+1.2.b" + "a" * 20 + "@tend.acme.example", [SUPPORT], "echo", "echo", via="loop")
    convs.append(c)

    c = Conv("56-auto-replies", "The customer's out-of-office answers our acknowledgement (In-Reply-To kept), and an Exchange 'Automatic reply' without References carries our tag.", (2026, 3, 3, 9, 0), tz="utc")
    f = c.add("outlook", "A", "p.ooo@holiday.example", [SUPPORT], "Quote for 50 licences", "Please send a quote.", via="new", name="Paul Away")
    ack = c.ack("A", f)
    c.reply("gmail", "A", "p.ooo@holiday.example", ack, "I am out of office until Monday.", "in-reply-to", subject="Out of Office: [Acme #{{ticket A}}] Quote for 50 licences", extra=["Auto-Submitted: auto-replied", "X-Autoreply: yes"])
    c.add("exchange", "A", "p.ooo@holiday.example", [SUPPORT], "Automatic reply: [Acme #{{ticket A}}] Quote for 50 licences", "I am out of office until Monday.", via="subject-tag", parent=ack, extra=["Auto-Submitted: auto-replied", "X-Auto-Response-Suppress: All"])
    convs.append(c)

    c = Conv("57-mailing-list", "support@ is subscribed to a vendor list: a list thread is one ticket (the list address takes part), digests are tickets of their own.", (2026, 3, 4, 9, 0))
    lst = "users@lists.vendor.example"
    lh = ["List-Id: Vendor users <users.lists.vendor.example>", "List-Post: <mailto:users@lists.vendor.example>", "Precedence: list", "List-Unsubscribe: <mailto:users-leave@lists.vendor.example>"]
    p1 = c.add("mutt", "A", "alice@uni.example", [lst], "[users] Release 5.0 breaks LDAP login", "After upgrading, LDAP login fails.", via="new", env=[SUPPORT], extra=lh)
    p2 = c.reply("thunderbird", "A", "bob@corp.example", p1, "Same here, set ldap.tls=false as workaround.", "in-reply-to", to=[lst], env=[SUPPORT], extra=lh)
    c.reply("mutt", "A", "alice@uni.example", p2, "Thanks Bob, that works.", "in-reply-to", to=[lst], env=[SUPPORT], extra=lh)
    c.add("generic", "B", "users-request@lists.vendor.example", [lst], "users Digest, Vol 42, Issue 7", "Today's Topics:\n  1. Release 5.0 breaks LDAP login", via="new", env=[SUPPORT], extra=lh)
    c.add("generic", "C", "users-request@lists.vendor.example", [lst], "users Digest, Vol 42, Issue 8", "Today's Topics:\n  1. Re: Release 5.0", via="new", env=[SUPPORT], extra=lh, hours=24)
    convs.append(c)

    c = Conv("58-merged-tickets", "The customer opened two tickets for one problem; a lead merged B into A. Replies to B's mail and B's tag land on A.", (2026, 3, 5, 9, 0))
    fa = c.add("gmail", "A", "twice@gmail.com", [SUPPORT], "Cannot upload photos", "Upload fails at 99%.", via="new", name="Tw Ice")
    c.ack("A", fa)
    fb = c.add("gmail", "B", "twice@gmail.com", [SUPPORT], "Photo upload broken", "Did you get my mail?", via="new", name="Tw Ice", hours=2)
    ackb = c.ack("B", fb)
    c.event("merge", "B", "A")
    c.reply("gmail", "A", "twice@gmail.com", ackb, "Still failing.", "in-reply-to", name="Tw Ice")
    c.add("generic", "A", "twice@gmail.com", [SUPPORT], "[Acme #{{ticket B}}] Photo upload broken", "Screenshot attached.", via="subject-tag")
    convs.append(c)

    c = Conv("59-reply-long-after-resolution", "A reply to our mail two months after the ticket was resolved: References still find the ticket (reopening or linking is the state machine's call).", (2026, 3, 6, 9, 0))
    f, ack, note, ans = opening(c, "apple", "A", "late.reply@me.com", "Lee Late", "Domain verification stuck", "DNS record added, still pending.")
    c.event("state", "A", "resolved")
    c.reply("apple", "A", "late.reply@me.com", ans, "It is pending again after I moved DNS.", "in-reply-to", hours=24 * 60)
    convs.append(c)

    c = Conv("60-closed-spam-not-joined", "A spam ticket was closed; the same sender sends the same subject again: the closed ticket is not found by subject.", (2026, 3, 7, 9, 0))
    c.add("generic", "A", "seo@spammy.example", [SUPPORT], "Rank #1 on Google guaranteed", "Cheap SEO!", via="new")
    c.event("state", "A", "closed")
    c.add("generic", "B", "seo@spammy.example", [SUPPORT], "Rank #1 on Google guaranteed", "Cheap SEO, again!", via="new", hours=24)
    convs.append(c)

    c = Conv("61-outlook-forward-keeps-thread-index", "Outlook keeps the Thread-Index on a forward; the colleague who got the forward writes in. Conversation roots are not secret: not joined.", (2026, 3, 8, 9, 0), tz="utc")
    f, ack, note, ans = opening(c, "outlook", "A", "m.klein@klein.example", "Max Klein", "Price increase notice", "Why did the price go up?")
    fw = c.add("outlook", "-", "m.klein@klein.example", ["u.roth@klein.example"], "FW: Re: [Acme #{{ticket A}}] Price increase notice", "FYI", parent=ans, refs=[], direction="none")
    c.add("exchange", "B", "u.roth@klein.example", [SUPPORT], "RE: FW: Re: [Acme #{{ticket A}}] Price increase notice", "I'm Max's boss; cancel the contract.", via="new", parent=fw, name="Ute Roth")
    convs.append(c)

    c = Conv("62-zero-guid-thread-index", "A CRM stamps every mail with the same all-zero Thread-Index: it must not join different customers.", (2026, 3, 9, 9, 0))
    z = "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="
    c.add("generic", "A", "crm1@firm-a.example", [SUPPORT], "Meeting request: onboarding", "Can we meet?", via="new", tindex=z)
    c.add("generic", "B", "crm2@firm-b.example", [SUPPORT], "Meeting request: renewal", "Can we meet?", via="new", tindex=z)
    convs.append(c)

    c = Conv("63-outlook-edited-subject-thread-index", "Exchange customer answers our acknowledgement but deletes our tag and the prefix; no References: our acknowledgement carried her Thread-Index, so the root joins.", (2026, 3, 10, 9, 0), tz="utc")
    f = c.add("exchange", "A", "b.schmidt@schmidt.example", [SUPPORT], "Report scheduling", "Reports are not sent on Mondays.", via="new", name="Berit Schmidt")
    ack = c.ack("A", f)
    c.add("exchange", "A", "b.schmidt@schmidt.example", [SUPPORT], "Mondays only", "Just Mondays, other days fine.", via="thread-index", parent=ack, name="Berit Schmidt")
    convs.append(c)

    c = Conv("64-agents-signed-addresses", "Agents answer from phones and desktops through reply and note addresses, one of them still signed with the previous key (rotation).", (2026, 3, 11, 9, 0))
    f = c.add("gmail", "A", "agents.case@gmail.com", [SUPPORT], "Dark mode request", "Please add dark mode.", via="new")
    c.ack("A", f)
    n1 = c.notify("A", f, 2, agent=12)
    c.agent_reply("A", n1, 12, "Logged as feature request FR-221.", client="iphone", purpose="note")
    c.agent_reply("A", n1, 12, "Thanks! We logged it.", client="iphone")
    c.agent_reply("A", n1, 3, "I'll take this one.", client="outlook", addr="{{reply-prev A 3}}")
    convs.append(c)

    c = Conv("65-agent-retired-key", "An agent answers an old notification whose address was signed with a retired key: the token is refused, the mail still joins by In-Reply-To to our notification but without a reply token (held as a comment).", (2026, 3, 12, 9, 0))
    f = c.add("gmail", "A", "retired.key@gmail.com", [SUPPORT], "Old invoice PDF is blank", "PDF blank.", via="new")
    c.ack("A", f)
    n1 = c.notify("A", f, 2, agent=7)
    c.agent_reply("A", n1, 7, "#resolve", addr="{{reply-retired A 7}}", via="in-reply-to")
    convs.append(c)

    c = Conv("66-two-inboxes", "The customer writes to billing@ with support@ in Cc, then replies to both.", (2026, 3, 13, 9, 0))
    f = c.add("outlook", "A", "acct@twoboxes.example", [BILLING], "VAT number missing on invoices", "Please add our VAT number.", via="new", cc=[SUPPORT], env=[BILLING, SUPPORT])
    ack = c.ack("A", f)
    c.reply("outlook", "A", "acct@twoboxes.example", ack, "VAT: DE123456789", "in-reply-to", prefix="RE: ", to=[BILLING], cc=[SUPPORT], env=[BILLING, SUPPORT])
    convs.append(c)

    c = Conv("67-same-subject-different-customers", "Two customers write the same subject on the same morning; each follow-up by subject joins its own sender's ticket only.", (2026, 3, 14, 9, 0))
    c.add("generic", "A", "first.person@alpha.example", [SUPPORT], "Password reset email not arriving", "No mail.", via="new")
    c.add("generic", "B", "second.person@beta.example", [SUPPORT], "Password reset email not arriving", "Same.", via="new", hours=0)
    c.add("generic", "B", "second.person@beta.example", [SUPPORT], "Re: Password reset email not arriving", "Still nothing.", via="subject")
    c.add("generic", "A", "first.person@alpha.example", [SUPPORT], "Fwd: Password reset email not arriving", "Again.", via="subject")
    convs.append(c)

    c = Conv("68-concurrent-tickets", "One customer with two open tickets replies to each; nothing crosses.", (2026, 3, 15, 9, 0))
    fa = c.add("thunderbird", "A", "busy@multi.example", [SUPPORT], "Webhook signature mismatch", "Signatures fail.", via="new")
    acka = c.ack("A", fa)
    fb = c.add("thunderbird", "B", "busy@multi.example", [SUPPORT], "Invoice for February", "Please send Feb invoice.", via="new")
    ackb = c.ack("B", fb)
    c.reply("thunderbird", "B", "busy@multi.example", ackb, "Also January.", "in-reply-to")
    c.reply("thunderbird", "A", "busy@multi.example", acka, "Using SHA-256 as documented.", "in-reply-to")
    convs.append(c)

    c = Conv("69-stranger-tag-cc-customer", "A colleague the ticket does not know writes with the tag and the customer in Cc. Issue 3 honours a tag when a Cc takes part, so it joins; the customer sees the mail.", (2026, 3, 16, 9, 0))
    f = c.add("gmail", "A", "owner@cc-case.example", [SUPPORT], "SAML setup", "Need SAML.", via="new")
    c.ack("A", f)
    c.add("outlook", "A", "it-admin@cc-case.example", [SUPPORT], "RE: [Acme #{{ticket A}}] SAML setup", "Here is our metadata URL.", via="subject-tag", cc=["owner@cc-case.example"])
    convs.append(c)

    c = Conv("70-forward-unrelated-mail", "The customer forwards someone else's old thread into support as a new question: unknown References open a new ticket.", (2026, 3, 17, 9, 0))
    c.add("gmail", "A", "fwd.new@gmail.com", [SUPPORT], "Fwd: Your order has shipped", "Is this phishing?", via="new", refs=["0100018d-aaaa-bbbb-cccc-123456789abc-000000@email.amazonses.com"], irt="0100018d-aaaa-bbbb-cccc-123456789abc-000000@email.amazonses.com")
    convs.append(c)

    c = Conv("71-customer-forwards-our-answer-back", "The customer forwards our own answer back to support (Gmail Fwd keeps References): joins by References to our mail.", (2026, 3, 18, 9, 0))
    f, ack, note, ans = opening(c, "gmail", "A", "fwd.back@gmail.com", "Fred Back", "Discount code rejected", "Code SPRING rejected.")
    c.add("gmail", "A", "fwd.back@gmail.com", [SUPPORT], "Fwd: Re: [Acme #{{ticket A}}] Discount code rejected", "---------- Forwarded message ---------", via="references", refs=ans.refs + [ans.mid], irt=None)
    convs.append(c)

    c = Conv("72-tag-positions", "Our tag at the end of the subject and the bare [#N] form, sent by the customer with no other evidence.", (2026, 3, 19, 9, 0))
    f = c.add("generic", "A", "tags@position.example", [SUPPORT], "Printer offline", "Offline.", via="new")
    c.ack("A", f)
    c.add("generic", "A", "tags@position.example", [SUPPORT], "Printer still offline [Acme #{{ticket A}}]", "Still.", via="subject-tag")
    c.add("generic", "A", "tags@position.example", [SUPPORT], "[#{{ticket A}}] printer", "And now?", via="subject-tag")
    c.add("generic", "B", "tags@position.example", [SUPPORT], "[Other #{{ticket A}}] new topic: scanner", "Another vendor's tag is not ours.", via="new")
    convs.append(c)

    c = Conv("73-address-case", "The customer's client writes her address in another case; addresses compare lowercased.", (2026, 3, 20, 9, 0))
    f = c.add("generic", "A", "Jana.Case@Example.org", [SUPPORT], "Shared calendar not visible", "Calendar missing.", via="new")
    c.ack("A", f)
    c.add("generic", "A", "JANA.CASE@EXAMPLE.ORG", [SUPPORT], "AW: [Acme #{{ticket A}}] Shared calendar not visible", "Any news?", via="subject-tag")
    c.add("generic", "A", "jana.case@example.org", [SUPPORT], "Shared Calendar Not Visible", "Hello?", via="subject")
    convs.append(c)

    c = Conv("74-outlook-mobile", "Outlook for iOS: Thread-Index and References, 'Get Outlook for iOS' signature.", (2026, 3, 21, 9, 0), tz="est")
    f, ack, note, ans = opening(c, "outlook-mobile", "A", "mobile.exec@bigcorp.example", "Dana Exec", "Urgent: dashboard down for all users", "Dashboard is down.\n\nGet Outlook for iOS")
    r = c.reply("outlook-mobile", "A", "mobile.exec@bigcorp.example", ans, "All users, since 8am.\n\nGet Outlook for iOS", "in-reply-to", prefix="RE: ")
    a2 = c.answer("A", r, 4, "Restored, root cause follows.")
    c.reply("outlook-mobile", "A", "mobile.exec@bigcorp.example", a2, "Confirmed.\n\nGet Outlook for iOS", "in-reply-to", prefix="RE: ")
    convs.append(c)

    c = Conv("75-references-to-colleague-inbound", "A colleague replies-all to the customer's first mail, but the customer had not put her in Cc and the reply goes to support only: the customer's id is no proof, a new ticket.", (2026, 3, 22, 9, 0))
    f = c.add("apple", "A", "lead@studio.example", [SUPPORT], "Font licence for print run", "Which licence covers print?", via="new")
    c.ack("A", f)
    c.add("apple", "B", "intern@studio.example", [SUPPORT], "Re: Font licence for print run", "Also web?", via="new", parent=f)
    convs.append(c)

    c = Conv("76-list-reply-references-root-only", "A long References chain where only the oldest entry (the customer's first mail) is known; the sender takes part, so it joins.", (2026, 3, 23, 9, 0))
    f = c.add("mutt", "A", "dev@kernel-shop.example", [SUPPORT], "Patch for rate limiter", "See attached patch.", via="new")
    c.ack("A", f)
    chain = [f.mid] + ["%d.GA%d@mail.kernel-shop.example" % (20260323100000 + i, i) for i in range(60)]
    c.add("mutt", "A", "dev@kernel-shop.example", [SUPPORT], "Re: Patch for rate limiter (v2)", "v2 attached.", via="references", refs=chain, irt=chain[-1])
    convs.append(c)
    return convs
