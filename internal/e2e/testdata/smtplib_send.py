# Delivers messages with Python's smtplib, as a real client would.
# usage: smtplib_send.py HOST PORT
import smtplib, sys
from email.message import EmailMessage

host, port = sys.argv[1], int(sys.argv[2])

with smtplib.SMTP(host, port, timeout=60) as s:
    s.ehlo("client.example.net")
    assert s.has_extn("smtputf8"), "SMTPUTF8 not advertised"
    assert s.has_extn("8bitmime"), "8BITMIME not advertised"
    assert s.has_extn("starttls"), "STARTTLS not advertised"
    assert not s.has_extn("auth"), "AUTH advertised on the MX port"

    # 8-bit UTF-8 body and header, SMTPUTF8 envelope.
    m = EmailMessage()
    m["From"] = "Jörg <jörg@example.net>"
    m["To"] = "alice@example.test"
    m["Subject"] = "Grüße aus Köln"
    m.set_content("Schöne Grüße — 8-bit body ✓\n", cte="8bit")
    s.send_message(m, mail_options=["SMTPUTF8"])

    # 10 MB message.
    big = EmailMessage()
    big["From"] = "bulk@example.net"
    big["To"] = "alice@example.test"
    big["Subject"] = "big"
    line = ("x" * 76 + "\n")
    big.set_content(line * (10_000_000 // len(line)), cte="7bit")
    s.send_message(big)

    # A single 50,000-byte line (real mail has them; go-smtp's default
    # limit of 2,000 would refuse it).
    raw = ("From: long@example.net\r\nTo: alice@example.test\r\nSubject: longline\r\n\r\n"
           + "y" * 50_000 + "\r\nend\r\n")
    s.sendmail("long@example.net", ["alice@example.test"], raw)

    # Refusals: unknown user, relay.
    for rcpt, code in (("nobody@example.test", 550), ("someone@elsewhere.example", 554)):
        try:
            s.sendmail("x@example.net", [rcpt], "Subject: x\r\n\r\nx\r\n")
            raise SystemExit(f"{rcpt} accepted")
        except smtplib.SMTPRecipientsRefused as e:
            got = e.recipients[rcpt][0]
            assert got == code, f"{rcpt}: {got}"
print("ok")
