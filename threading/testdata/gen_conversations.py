#!/usr/bin/env python3
"""Writes threading/testdata/conversations: a labelled corpus of support
conversations in the header shapes real mail clients emit.

Run from threading/testdata:  python3 gen_conversations.py
The output is committed; this script documents how it was made and is the
easiest way to add conversations. Placeholders such as {{ticket A}} and
{{mid A 1}} are filled in by threadingtest.Render at replay time, because
ticket numbers and signed tokens depend on the store and the secret.
"""
import base64
import datetime as dt
import os
import random
import shutil
import struct
import uuid

OUT = "conversations"
TZS = {"cet": dt.timezone(dt.timedelta(hours=1)), "utc": dt.timezone.utc,
       "pst": dt.timezone(dt.timedelta(hours=-8)), "jst": dt.timezone(dt.timedelta(hours=9)),
       "msk": dt.timezone(dt.timedelta(hours=3)), "ist": dt.timezone(dt.timedelta(hours=5, minutes=30)),
       "brt": dt.timezone(dt.timedelta(hours=-3)), "est": dt.timezone(dt.timedelta(hours=-5))}

SUPPORT = "support@acme.example"
BILLING = "billing@acme.example"
DOMAIN = "tend.acme.example"
AGENTS = {7: ("Lena Berg", "lena@acme.example"), 12: ("Omar Haddad", "omar@acme.example"),
          3: ("Mika Virtanen", "mika@acme.example")}


def rfc2822(d):
    return d.strftime("%a, %d %b %Y %H:%M:%S %z").replace(" 0", " ", 1) if d.day < 10 else d.strftime("%a, %d %b %Y %H:%M:%S %z")


def filetime(d):
    return int((d.timestamp() + 11644473600) * 10_000_000)


def new_tindex(d, rnd):
    ft = filetime(d)
    head = struct.pack(">Q", ft)[:6]
    return base64.b64encode(head + bytes(rnd.getrandbits(8) for _ in range(16))).decode()


def child_tindex(parent, d, rnd):
    b = base64.b64decode(parent)
    head = struct.unpack(">Q", b[:6] + b"\0\0")[0]
    delta = max(0, filetime(d) - head)
    if delta >> 49 == 0:
        level = (delta >> 18) & 0x7FFFFFFF
    else:
        level = 0x80000000 | ((delta >> 23) & 0x7FFFFFFF)
    return base64.b64encode(b + struct.pack(">I", level) + bytes([rnd.getrandbits(8)])).decode()


def enc(text, charset="utf-8", mode="q"):
    """RFC 2047 encode like the clients do; ASCII stays as it is. Long
    texts are split into several encoded words on character boundaries."""
    try:
        text.encode("ascii")
        return text
    except UnicodeEncodeError:
        pass
    cs = charset.upper()
    words, chunk = [], ""
    for ch in text:
        trial = chunk + ch
        if len(trial.encode(charset)) > (36 if mode == "b" else 20):
            words.append(chunk)
            chunk = ch
        else:
            chunk = trial
    words.append(chunk)
    out = []
    for w in words:
        raw = w.encode(charset)
        if mode == "b":
            out.append("=?%s?B?%s?=" % (cs, base64.b64encode(raw).decode()))
        else:
            q = "".join(chr(b) if (chr(b).isalnum() and b < 128) or chr(b) in "!*+-/" else ("_" if b == 32 else "=%02X" % b) for b in raw)
            out.append("=?%s?Q?%s?=" % (cs, q))
    return "\r\n ".join(out)


class Msg:
    def __init__(self, conv, **kw):
        self.__dict__.update(kw)
        self.conv = conv


class Conv:
    def __init__(self, slug, desc, start, tz="cet"):
        self.slug, self.desc = slug, desc
        self.t = dt.datetime(*start, tzinfo=TZS[tz])
        self.tz = TZS[tz]
        self.rows, self.files = [], []
        self.rnd = random.Random(slug)
        self.n = 0
        self.outn = {}

    def tick(self, hours):
        self.t = self.t + dt.timedelta(hours=hours, minutes=self.rnd.randint(1, 50), seconds=self.rnd.randint(0, 59))
        return self.t

    # ---- Message-ID styles of real clients
    def mid(self, client, addr):
        r, dom = self.rnd, addr.split("@")[1]
        if client in ("gmail", "android"):
            alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_=+-"
            return "CA" + "".join(r.choice(alpha) for _ in range(46)) + "@mail.gmail.com"
        if client in ("outlook", "outlook-norefs", "outlook-mobile", "exchange"):
            srv = "%s%dPR%02dMB%04d" % (r.choice(["AM", "DB", "VI", "PA", "BN", "CH", "SN"]), r.randint(1, 9), r.randint(1, 99), r.randint(1000, 9999))
            region = r.choice(["eurprd04", "eurprd07", "namprd12", "namprd04", "apcprd03"])
            return "%s%s@%s.%s.prod.outlook.com" % (srv, "".join(r.choice("0123456789ABCDEF") for _ in range(30)), srv, region)
        if client == "outlook-desktop":
            return "000%s01d%s$%s$%s@%s" % ("".join(r.choice("0123456789abcdef") for _ in range(2)), "".join(r.choice("0123456789abcdef") for _ in range(3)),
                                          "".join(r.choice("0123456789abcdef") for _ in range(8)), "".join(r.choice("0123456789abcdef") for _ in range(8)), dom)
        if client in ("apple", "iphone"):
            return str(uuid.UUID(int=r.getrandbits(128))).upper() + "@" + dom
        if client == "thunderbird":
            return str(uuid.UUID(int=r.getrandbits(128))) + "@" + dom
        if client == "yahoo":
            return "%d.%d.%d@mail.yahoo.com" % (r.randint(10**8, 10**9), r.randint(10**6, 10**7), int(self.t.timestamp() * 1000))
        if client == "mutt":
            return "%s.GA%d@%s" % (self.t.strftime("%Y%m%d%H%M%S"), r.randint(1000, 99999), "mail." + dom)
        if client == "webform":
            return "%s@%s" % ("".join(r.choice("0123456789abcdef") for _ in range(32)), dom)
        return "%d.%d@%s" % (r.randint(10**5, 10**6), r.randint(10**5, 10**6), dom)

    def boundary(self, client):
        r = self.rnd
        if client in ("gmail", "android"):
            return "000000000000" + "".join(r.choice("0123456789abcdef") for _ in range(16))
        if client in ("apple", "iphone"):
            return "Apple-Mail=_" + str(uuid.UUID(int=r.getrandbits(128))).upper()
        if client.startswith("outlook") or client == "exchange":
            return "_000_" + "".join(r.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(40)) + "_"
        return "------------" + "".join(r.choice("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") for _ in range(24))

    # ---- one message
    def add(self, client, label, frm, to, subject, body, via="-", cc=(), parent=None, refs=None, irt=None,
            env=None, direction="in", mid=None, keep_refs=True, tindex=None, extra=(), hours=3, tz=None,
            name=None, no_mid=False, date=None):
        d = date or self.tick(hours)
        if tz:
            d = d.astimezone(TZS[tz])
        if mid is None and not no_mid:
            mid = self.mid(client, frm)
        if parent is not None and refs is None:
            refs = list(parent.refs) + [parent.mid] if parent.mid else list(parent.refs)
            if client in ("outlook-norefs", "exchange") or not keep_refs:
                refs = []
            if irt is None and refs:
                irt = parent.mid
        refs = refs or []
        if client in ("outlook", "outlook-norefs", "outlook-mobile", "exchange", "outlook-desktop") and tindex is None:
            if parent is not None and getattr(parent, "tindex", None):
                tindex = child_tindex(parent.tindex, d, self.rnd)
            else:
                tindex = new_tindex(d, self.rnd)
        h = []
        fromhdr = "%s <%s>" % (enc(name), frm) if name else frm
        tohdr = ", ".join(to)
        subj_hdr = subject
        if client in ("gmail", "android"):
            h += ["Received: by mail-lj1-f176.google.com with SMTP id 38308e7fff4ca-2d2305589a2so39112691fa.1",
                  "        for <%s>; %s" % (to[0], rfc2822(d.astimezone(TZS["pst"])) + " (PST)"),
                  "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=gmail.com; s=20230601; t=%d;" % int(d.timestamp()),
                  "        h=to:subject:message-id:date:from:in-reply-to:references:mime-version:from:to:cc:subject:date:message-id:reply-to;",
                  "        bh=%s=;" % base64.b64encode(bytes(self.rnd.getrandbits(8) for _ in range(31))).decode()[:43],
                  "        b=%s" % base64.b64encode(bytes(self.rnd.getrandbits(8) for _ in range(60))).decode(),
                  "X-Google-Smtp-Source: AGHT+IF%s" % base64.b64encode(bytes(self.rnd.getrandbits(8) for _ in range(30))).decode(),
                  "X-Received: by 2002:a2e:9b4e:0:b0:2d4:6aa1:4cb6 with SMTP id o14-20020a2e9b4e000000b002d46aa14cb6mr1223745ljj.29.%d;" % int(d.timestamp() * 1000),
                  "        %s (PST)" % rfc2822(d.astimezone(TZS["pst"])),
                  "MIME-Version: 1.0"]
            if refs:
                h.append("References: " + "\r\n ".join("<%s>" % r for r in refs))
            if irt:
                h.append("In-Reply-To: <%s>" % irt)
            h += ["From: " + fromhdr, "Date: " + rfc2822(d)]
            if mid:
                h.append("Message-ID: <%s>" % mid)
            h += ["Subject: " + subj_hdr, "To: " + tohdr]
            if cc:
                h.append("Cc: " + ", ".join(cc))
            ctype = 'multipart/alternative; boundary="%s"' % self.boundary(client)
        elif client in ("outlook", "outlook-norefs", "outlook-mobile", "exchange", "outlook-desktop"):
            h += ["Received: from %s.prod.outlook.com (2603:10a6:20b:3e0::9) by" % (mid or "x").split("@")[-1].split(".")[0],
                  " %s.outlook.office365.com (2603:10a6:20b:3e0::9) with Microsoft SMTP" % (mid or "x").split("@")[-1].split(".")[0],
                  " Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.7362.19; " + rfc2822(d.astimezone(dt.timezone.utc)),
                  "From: " + fromhdr, "To: " + tohdr]
            if cc:
                h.append("CC: " + ", ".join(cc))
            h += ["Subject: " + subj_hdr, "Thread-Topic: " + (getattr(self, "topic", None) or subj_hdr), "Thread-Index: " + tindex,
                  "Date: " + rfc2822(d.astimezone(dt.timezone.utc)).replace("+0000", "+0000")]
            if mid:
                h.append("Message-ID:\r\n <%s>" % mid)
            if refs and client not in ("outlook-norefs", "exchange"):
                h.append("References: " + "\r\n ".join("<%s>" % r for r in refs))
            if irt and client not in ("outlook-norefs", "exchange"):
                h.append("In-Reply-To: <%s>" % irt)
            h += ["Accept-Language: de-DE, en-US", "Content-Language: de-DE", "X-MS-Has-Attach:", "X-MS-TNEF-Correlator:",
                  "x-ms-publictraffictype: Email",
                  "x-ms-exchange-senderadcheck: 1",
                  "x-microsoft-antispam: BCL:0;"]
            if client == "outlook-desktop":
                h += ["X-Mailer: Microsoft Outlook 16.0", "X-MimeOLE: Produced By Microsoft MimeOLE"]
            h += ["MIME-Version: 1.0"]
            ctype = 'multipart/alternative;\r\n\tboundary="%s"' % self.boundary(client)
        elif client in ("apple", "iphone"):
            h += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: quoted-printable"]
            if client == "apple":
                h.append("Mime-Version: 1.0 (Mac OS X Mail 16.0 \\(3774.500.171.1.1\\))")
            else:
                h.append("Mime-Version: 1.0 (1.0)")
            h += ["Subject: " + subj_hdr, "From: " + fromhdr]
            if irt:
                h.append("In-Reply-To: <%s>" % irt)
            h.append("Date: " + rfc2822(d))
            if cc:
                h.append("Cc: " + ", ".join(cc))
            if mid:
                h.append("Message-Id: <%s>" % mid)
            if refs:
                h.append("References: " + " ".join("<%s>" % r for r in refs))
            h.append("To: " + tohdr)
            h.append("X-Mailer: " + ("Apple Mail (2.3774.500.171.1.1)" if client == "apple" else "iPhone Mail (21D61)"))
            ctype = None
        elif client == "thunderbird":
            if mid:
                h.append("Message-ID: <%s>" % mid)
            h += ["Date: " + rfc2822(d), "MIME-Version: 1.0",
                  "User-Agent: Mozilla Thunderbird",
                  "Subject: " + subj_hdr, "Content-Language: en-US"]
            if refs:
                h.append("References: " + "\r\n ".join("<%s>" % r for r in refs))
            h += ["To: " + tohdr]
            if cc:
                h.append("Cc: " + ", ".join(cc))
            h += ["From: " + fromhdr]
            if irt:
                h.append("In-Reply-To: <%s>" % irt)
            ctype = "text/plain; charset=UTF-8; format=flowed"
        elif client == "yahoo":
            h += ["Date: " + rfc2822(d), "From: " + fromhdr, "To: " + tohdr]
            if cc:
                h.append("Cc: " + ", ".join(cc))
            if mid:
                h.append("Message-ID: <%s>" % mid)
            if irt:
                h.append("In-Reply-To: <%s>" % irt)
            if refs:
                h.append("References: " + " ".join("<%s>" % r for r in refs))
            h += ["Subject: " + subj_hdr, "MIME-Version: 1.0",
                  "X-Mailer: WebService/1.1.22077 YMailNorrin"]
            ctype = 'multipart/alternative; boundary="----=_Part_%d_%d.%d"' % (self.rnd.randint(10**6, 10**7), self.rnd.randint(10**8, 10**9), int(d.timestamp() * 1000))
        elif client == "mutt":
            h += ["Date: " + rfc2822(d), "From: " + fromhdr, "To: " + tohdr]
            if cc:
                h.append("Cc: " + ", ".join(cc))
            h.append("Subject: " + subj_hdr)
            if mid:
                h.append("Message-ID: <%s>" % mid)
            if refs:
                h.append("References: " + " ".join("<%s>" % r for r in refs))
            if irt:
                h.append("In-Reply-To: <%s>" % irt)
            h += ["MIME-Version: 1.0", "Content-Disposition: inline", "User-Agent: Mutt/2.2.12 (2023-09-09)"]
            ctype = "text/plain; charset=us-ascii"
        else:  # plain generic / web forms / scripts / our own mail
            h += ["From: " + fromhdr, "To: " + tohdr]
            if cc:
                h.append("Cc: " + ", ".join(cc))
            h += ["Subject: " + subj_hdr, "Date: " + rfc2822(d)]
            if mid:
                h.append("Message-ID: <%s>" % mid)
            elif mid == "":
                h.append("Message-ID: <>")
            if irt:
                h.append("In-Reply-To: <%s>" % irt)
            if refs:
                h.append("References: " + " ".join("<%s>" % r for r in refs))
            h.append("MIME-Version: 1.0")
            ctype = "text/plain; charset=utf-8"
        h += list(extra)
        if tindex and client not in ("outlook", "outlook-norefs", "outlook-mobile", "exchange", "outlook-desktop"):
            h += ["Thread-Topic: " + (getattr(self, "topic", None) or subj_hdr), "Thread-Index: " + tindex]
        text = body.strip("\n") + "\n"
        if ctype and ctype.startswith("multipart/alternative"):
            b = ctype.split('boundary="')[1].rstrip('"')
            html = "<html><body><div dir=\"ltr\">" + "<br>\r\n".join(x.replace("&", "&amp;").replace("<", "&lt;") for x in text.splitlines()) + "</div></body></html>"
            payload = "--%s\r\nContent-Type: text/plain; charset=\"UTF-8\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s\r\n--%s\r\nContent-Type: text/html; charset=\"UTF-8\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s\r\n--%s--\r\n" % (
                b, text.replace("\n", "\r\n"), b, html, b)
            h.append("Content-Type: " + ctype)
        else:
            if ctype:
                h.append("Content-Type: " + ctype)
                if "charset=utf-8" in ctype.lower() or "UTF-8" in ctype:
                    h.append("Content-Transfer-Encoding: 8bit")
            payload = text.replace("\n", "\r\n")
        raw = "\r\n".join(h) + "\r\n\r\n" + payload
        if direction == "none":
            return Msg(self, mid=mid, refs=refs, subject=subject, tindex=tindex, frm=frm, date=d, client=client, to=to, cc=cc)
        self.n += 1
        fname = "%02d-%s.eml" % (self.n, direction if direction != "in" else client)
        envs = "-" if env == "imap" else ",".join(env or to_envelope(to, cc))
        self.files.append((fname, raw))
        self.rows.append("\t".join([fname, label, direction, via, envs]))
        return Msg(self, mid=mid, refs=refs, subject=subject, tindex=tindex, frm=frm, date=d, client=client, to=to, cc=cc)

    def reply(self, client, label, frm, parent, body, via, prefix="Re: ", subject=None, to=None, **kw):
        if subject is None:
            s = parent.subject
            low = s.lower()
            subject = s if low.startswith(prefix.lower().strip()) else prefix + s
        if to is None:
            to = [SUPPORT] if parent.frm != SUPPORT else [SUPPORT]
        return self.add(client, label, frm, to, subject, body, via=via, parent=parent, **kw)

    # ---- our outgoing mail
    def ours(self, label, parent, kind, n, body, subject=None, to=None, agent=7, direction="out", cc=()):
        d = self.tick(0)
        refs = (list(parent.refs) + [parent.mid]) if parent and parent.mid else (list(parent.refs) if parent else [])
        mid = "{{mid %s %d}}" % (label, n)
        if subject is None:
            base = parent.subject if parent else ""
            subject = "[Acme #{{ticket %s}}] %s" % (label, base) if kind == "ack" else "Re: [Acme #{{ticket %s}}] %s" % (label, strip_re(base))
            if "[Acme #" in base:
                subject = base if base.lower().startswith("re") else "Re: " + base
        h = []
        if kind == "ack":
            h += ['From: "Acme Support" <%s>' % SUPPORT, "To: " + (to or parent.frm), "Reply-To: " + SUPPORT]
        elif kind == "reply":
            nm = AGENTS[agent][0]
            h += ['From: "%s (Acme Support)" <%s>' % (nm, SUPPORT), "To: " + (to or parent.frm), "Reply-To: " + SUPPORT]
        elif kind == "notify":
            nm, addr = AGENTS[agent]
            h += ['From: "Acme Support" <%s>' % SUPPORT, '"%s" <%s>' % (nm, addr), "Reply-To: {{reply %s %d}}" % (label, agent)]
            h[1] = 'To: "%s" <%s>' % (nm, addr)
        if cc:
            h.append("Cc: " + ", ".join(cc))
        h += ["Subject: " + subject, "Date: " + rfc2822(d), "Message-ID: <%s>" % mid]
        if parent and parent.mid:
            h.append("In-Reply-To: <%s>" % parent.mid)
        if refs:
            h.append("References: " + "\r\n ".join("<%s>" % r for r in refs))
        tindex = None
        if parent is not None and getattr(parent, "tindex", None):
            tindex = child_tindex(parent.tindex, d, self.rnd)
            h += ["Thread-Topic: " + strip_re(parent.subject), "Thread-Index: " + tindex]
        if kind in ("ack", "notify"):
            h += ["Auto-Submitted: auto-replied", "X-Auto-Response-Suppress: All"]
        h += ["X-Tend-Loop: acme", "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
        raw = "\r\n".join(h) + "\r\n\r\n" + body.strip("\n").replace("\n", "\r\n") + "\r\n"
        self.n += 1
        fname = "%02d-%s-%s.eml" % (self.n, direction, kind)
        self.files.append((fname, raw))
        self.rows.append("\t".join([fname, label, direction, "-", "-"]))
        frm = SUPPORT
        return Msg(self, mid=mid, refs=refs, subject=subject, tindex=tindex, frm=frm, date=d, client="tend", to=[to or (parent.frm if parent else "")], cc=cc)

    def ack(self, label, parent, n=1, **kw):
        body = ("Hello,\n\nthank you for writing to Acme Support. Your request has ticket number "
                "{{ticket %s}}. A person will answer within one business day.\n\nAcme Support" % label)
        return self.ours(label, parent, "ack", n, body, **kw)

    def answer(self, label, parent, n, body, agent=7, **kw):
        return self.ours(label, parent, "reply", n, body + "\n\n%s\nAcme Support" % AGENTS[agent][0], agent=agent, **kw)

    def notify(self, label, parent, n, agent=7, **kw):
        return self.ours(label, parent, "notify", n, "New message on ticket {{ticket %s}}. Reply to this mail to answer the customer; "
                         "write to the note address for an internal note." % label, agent=agent, **kw)

    def agent_reply(self, label, notification, agent, body, client="thunderbird", purpose="reply", addr=None, via="signed-address", **kw):
        nm, frm = AGENTS[agent]
        a = addr or "{{%s %s %d}}" % (purpose, label, agent)
        return self.add(client, label, frm, [a], "Re: " + notification.subject, body + "\n\n" + nm, via=via, parent=notification,
                        env=[a], name=nm, **kw)

    def event(self, *args):
        self.rows.append("\t".join(["!" + args[0]] + list(args[1:])))

    def write(self, base):
        d = os.path.join(base, self.slug)
        os.makedirs(d)
        with open(os.path.join(d, "manifest.tsv"), "w", newline="\n") as f:
            for line in self.desc.strip().splitlines():
                f.write("# " + line.strip() + "\n")
            f.write("# file\tlabel\tdirection\tvia\tenvelope\n")
            for r in self.rows:
                f.write(r + "\n")
        for name, raw in self.files:
            with open(os.path.join(d, name), "wb") as f:
                f.write(raw.encode("utf-8") if isinstance(raw, str) else raw)
        return len(self.files)


def to_envelope(to, cc):
    return [a for a in list(to) + list(cc) if a.endswith("@acme.example") and a.split("@")[0] in ("support", "billing")] or [SUPPORT]


def strip_re(s):
    out = s
    for p in ("Re: ", "RE: ", "AW: ", "SV: ", "Fwd: ", "FW: "):
        if out.startswith(p):
            out = out[len(p):]
    return out


def quote(text):
    return "\n".join("> " + l if l else ">" for l in text.strip("\n").splitlines())


def main():
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import convs_clients
    import convs_edge
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    total = 0
    convs = convs_clients.build() + convs_edge.build()
    for c in convs:
        total += c.write(OUT)
    print("%d conversations, %d messages" % (len(convs), total))


if __name__ == "__main__":
    main()
