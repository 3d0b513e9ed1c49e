# Verifies every DKIM-Signature of a message with dkimpy against a fake
# DNS zone. Usage: verify.py MESSAGE ZONE; ZONE has lines "name<TAB>txt".
# Prints one line per signature: "pass d=... s=..." or "fail ...".
import sys
import dkim

msg = open(sys.argv[1], 'rb').read()
zone = {}
for line in open(sys.argv[2], encoding='utf-8'):
    line = line.rstrip('\n')
    if line:
        name, txt = line.split('\t', 1)
        zone[name.lower().rstrip('.')] = txt.encode()

def dnsfunc(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    return zone.get(name.lower().rstrip('.'), b'')

d = dkim.DKIM(msg, minkey=1024)
sigs = [h for h in d.headers if h[0].lower() == b'dkim-signature']
if not sigs:
    print('none')
for i in range(len(sigs)):
    try:
        ok = d.verify(idx=i, dnsfunc=dnsfunc)
    except Exception as e:
        ok = False
        print('error', type(e).__name__, e, file=sys.stderr)
    print(('pass' if ok else 'fail'), d.domain.decode() if d.domain else '', d.selector.decode() if d.selector else '')
