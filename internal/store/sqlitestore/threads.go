package sqlitestore

import (
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/mailstead/mailstead/internal/message"
	"github.com/mailstead/mailstead/internal/store"
)

// Thread ids (RFC 8474 THREADID) are assigned when a message is stored, per
// account: a message joins the thread of an earlier message of the account
// it refers to (In-Reply-To, References), or of an earlier message that
// referred to it (a reply that arrived before its parent), else it starts a
// thread. The table threads maps the Message-IDs an account has seen, its
// messages' own and their parents' (In-Reply-To, else the last
// References entry), to their thread, so both directions and siblings whose
// common parent never arrived are one lookup each; all References are
// looked up, but only the parent is recorded, so a message adds at most
// two rows whatever its header says (a References field full of random
// ids cannot grow the table by fifty rows per message). Threads are never
// merged afterwards: a thread id, once given, is stable. Rows stay when
// messages are expunged (a late reply still finds its thread) and go with
// the account.

const (
	// maxThreadRefs bounds how many referenced Message-IDs one message
	// looks up and records: the In-Reply-To and the newest References.
	maxThreadRefs = 50
	// threadHeaderRead bounds how much of the blob is read to find the
	// header fields. Message-ID and References normally sit in the first
	// few KiB; a longer header threads as if they were absent.
	threadHeaderRead = 64 << 10
)

// threadKeys are the hashed Message-IDs of one message: its own (0 if it
// has none) and those it refers to, most relevant first.
type threadKeys struct {
	own  int64
	refs []int64
}

// threadKeysOf reads the Message-ID, In-Reply-To and References fields of
// a blob's header. Errors mean no keys: a message that cannot be read
// starts its own thread.
func threadKeysOf(b store.Blob) threadKeys {
	n := min(b.Size(), threadHeaderRead)
	if n <= 0 {
		return threadKeys{}
	}
	h, err := message.ReadHeader(b, 0, n)
	if err != nil {
		return threadKeys{}
	}
	return threadKeysFromHeader(h)
}

func threadKeysFromHeader(h []byte) threadKeys {
	var k threadKeys
	if v, ok := message.HeaderValue(h, "Message-ID"); ok {
		if ids := message.MessageIDs(v, 1); len(ids) > 0 {
			k.own = msgIDKey(ids[0])
		}
	}
	seen := map[int64]bool{}
	add := func(id string) {
		key := msgIDKey(id)
		if key != k.own && !seen[key] && len(k.refs) < maxThreadRefs {
			seen[key] = true
			k.refs = append(k.refs, key)
		}
	}
	// The parent first: In-Reply-To, else the last References entry.
	if v, ok := message.HeaderValue(h, "In-Reply-To"); ok {
		if ids := message.MessageIDs(v, 1); len(ids) > 0 {
			add(ids[0])
		}
	}
	var refs []string
	for _, v := range message.HeaderValues(h, "References") {
		refs = append(refs, message.MessageIDs(v, 1000)...)
		if len(refs) > 1000 {
			break
		}
	}
	for i := len(refs) - 1; i >= 0 && len(k.refs) < maxThreadRefs; i-- {
		add(refs[i])
	}
	return k
}

// Key namespaces, so a Message-ID can never collide with a copy key.
const (
	keyMessageID = 'm'
	keyCopy      = 'c'
)

func threadKey(kind byte, s string) int64 {
	h := sha256.New()
	h.Write([]byte{kind})
	h.Write([]byte(s))
	var sum [sha256.Size]byte
	k := int64(binary.BigEndian.Uint64(h.Sum(sum[:0])))
	if k == 0 {
		k = 1 // 0 means "none"
	}
	return k
}

// msgIDKey hashes a Message-ID. 64 bits make an accidental collision within
// one account negligible, and a forged one gains nothing a sender could not
// get by naming the Message-ID in References.
func msgIDKey(id string) int64 { return threadKey(keyMessageID, id) }

// copyKey names the thread in the destination account of a message copied
// from another account's thread, so copies of one thread stay together
// there without sharing the source account's thread id.
func copyKey(srcAccount int64, threadID string) int64 {
	return threadKey(keyCopy, strconv.FormatInt(srcAccount, 10)+"\x00"+threadID)
}

// validThreadID checks the RFC 8474 objectid syntax.
func validThreadID(id string) bool {
	if id == "" || len(id) > 255 {
		return false
	}
	for _, c := range []byte(id) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func newThreadID() string { return randomID("T") }

// lookupThread returns the thread of key in account, "" if none.
func (t *txn) lookupThread(account, key int64) (string, error) {
	var tid string
	err := t.QueryRowContext(t.ctx, "SELECT thread_id FROM threads WHERE account_id = ? AND key = ?", account, key).Scan(&tid)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("look up thread: %w", err)
	}
	return tid, nil
}

func (t *txn) recordThread(account, key int64, tid string) error {
	if key == 0 {
		return nil
	}
	if _, err := t.ExecContext(t.ctx, "INSERT OR IGNORE INTO threads(account_id, key, thread_id) VALUES(?,?,?)", account, key, tid); err != nil {
		return fmt.Errorf("record thread: %w", err)
	}
	return nil
}

// assignThread returns the thread of a new message of account with keys
// k, and records its Message-IDs under it.
func (t *txn) assignThread(account int64, k threadKeys) (string, error) {
	var tid string
	for _, key := range k.refs {
		var err error
		if tid, err = t.lookupThread(account, key); err != nil {
			return "", err
		}
		if tid != "" {
			break
		}
	}
	if tid == "" && k.own != 0 {
		// An earlier message referred to this one, or this one was
		// stored before (a copy delivered again).
		var err error
		if tid, err = t.lookupThread(account, k.own); err != nil {
			return "", err
		}
	}
	if tid == "" {
		tid = newThreadID()
	}
	if err := t.recordThread(account, k.own, tid); err != nil {
		return "", err
	}
	if len(k.refs) > 0 {
		// The parent only (see the package comment on threads).
		if err := t.recordThread(account, k.refs[0], tid); err != nil {
			return "", err
		}
	}
	return tid, nil
}

// copiedThread returns the thread in account dst for a message of thread
// tid of account src: the same id within an account, a thread of dst's
// own across accounts, so accounts never share thread ids.
func (t *txn) copiedThread(src, dst int64, tid string) (string, error) {
	if src == dst || tid == "" {
		return tid, nil
	}
	key := copyKey(src, tid)
	got, err := t.lookupThread(dst, key)
	if err != nil || got != "" {
		return got, err
	}
	got = newThreadID()
	return got, t.recordThread(dst, key, got)
}
