package imapserver

import (
	"bufio"
	"errors"
	"io"
)

// inflater is a raw DEFLATE (RFC 1951) decompressor for the client side
// of COMPRESS=DEFLATE.
//
// compress/flate cannot be used here: its reader hands out decoded bytes
// only when a stored block, the final block or a full window comes along.
// Clients that end each command with zlib's Z_SYNC_FLUSH send an empty
// stored block and get by, but Z_PARTIAL_FLUSH (isync/mbsync) ends with
// an empty fixed-code block, and the command would sit in the decoder
// until the client sent more, which it will not before it gets an
// answer. The inflater returns every byte as soon as it is decoded, and
// never waits for input while it has output to give.
//
// Memory: the 32 KiB window plus the code tables, about 36 KiB; it lives
// as long as the session (the client may refer back 32 KiB at any time).
type inflater struct {
	r *bufio.Reader

	bits  uint64 // bit buffer, LSB first
	nbits uint

	win   [windowSize]byte
	wpos  int   // next write position in win
	rpos  int   // next position to hand out
	avail int   // decoded bytes not yet handed out
	total int64 // bytes decoded in all, to validate distances

	state     int
	final     bool
	stored    int // bytes left in a stored block
	copyLen   int // bytes left of a back-reference
	copyDist  int
	lit, dist *huffman
	dynLit    huffman
	dynDist   huffman
	err       error
}

const (
	windowSize = 1 << 15
	fastBits   = 9
	maxCodeLen = 15
)

const (
	stHeader = iota
	stStored
	stHuffman
	stCopy
	stDone
)

var (
	errCorrupt = errors.New("deflate: corrupt input")
	// errYield stops decoding to hand out output before blocking on the
	// connection.
	errYield = errors.New("deflate: yield")
)

// huffman is a canonical Huffman code: counts per length and symbols in
// code order (as in zlib's puff), plus a table for codes of up to
// fastBits bits indexed by the next input bits.
type huffman struct {
	count  [maxCodeLen + 1]uint16
	symbol [288]uint16
	fast   [1 << fastBits]uint16 // symbol<<4 | length; 0: not in table
}

// build makes the code from code lengths. Over-subscribed codes are
// rejected; incomplete ones are allowed (RFC 1951 permits a single
// distance code), and their unused codes fail when decoded.
func (h *huffman) build(lengths []uint8) error {
	*h = huffman{}
	for _, l := range lengths {
		h.count[l]++
	}
	h.count[0] = 0
	left := 1
	for l := 1; l <= maxCodeLen; l++ {
		left <<= 1
		left -= int(h.count[l])
		if left < 0 {
			return errCorrupt
		}
	}
	var offs, next [maxCodeLen + 2]int
	code := 0
	for l := 1; l <= maxCodeLen; l++ {
		offs[l+1] = offs[l] + int(h.count[l])
		code = (code + int(h.count[l-1])) << 1
		next[l] = code
	}
	for sym, l := range lengths {
		if l == 0 {
			continue
		}
		h.symbol[offs[l]] = uint16(sym)
		offs[l]++
		c := next[l]
		next[l]++
		if int(l) <= fastBits {
			// The table is indexed by input bits, which arrive in
			// reverse code order.
			r := 0
			for i := 0; i < int(l); i++ {
				r = r<<1 | (c>>i)&1
			}
			for j := r; j < 1<<fastBits; j += 1 << l {
				h.fast[j] = uint16(sym)<<4 | uint16(l)
			}
		}
	}
	return nil
}

var fixedLit, fixedDist huffman

func init() {
	var l [288]uint8
	for i := range l {
		switch {
		case i < 144:
			l[i] = 8
		case i < 256:
			l[i] = 9
		case i < 280:
			l[i] = 7
		default:
			l[i] = 8
		}
	}
	fixedLit.build(l[:])
	var d [30]uint8
	for i := range d {
		d[i] = 5
	}
	fixedDist.build(d[:])
}

var (
	lenBase  = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lenExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtr = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	clOrder  = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
)

func newInflater(r *bufio.Reader) *inflater { return &inflater{r: r} }

// Read hands out decoded bytes; it blocks only when it has none.
func (z *inflater) Read(p []byte) (int, error) {
	for {
		if z.avail > 0 {
			n := min(len(p), z.avail, windowSize-z.rpos)
			copy(p, z.win[z.rpos:z.rpos+n])
			z.rpos = (z.rpos + n) % windowSize
			z.avail -= n
			return n, nil
		}
		if z.err != nil {
			return 0, z.err
		}
		if err := z.decode(); err != nil && err != errYield {
			z.err = err
		}
	}
}

// need makes sure n (at most 57) bits are buffered. It returns errYield
// rather than block while decoded output is waiting.
func (z *inflater) need(n uint) error {
	for z.nbits < n {
		if z.avail > 0 && z.r.Buffered() == 0 {
			return errYield
		}
		c, err := z.r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		z.bits |= uint64(c) << z.nbits
		z.nbits += 8
	}
	return nil
}

// peekMore adds buffered input to the bit buffer without blocking.
func (z *inflater) peekMore() {
	for z.nbits <= 56 && z.r.Buffered() > 0 {
		c, _ := z.r.ReadByte()
		z.bits |= uint64(c) << z.nbits
		z.nbits += 8
	}
}

func (z *inflater) consume(n uint) {
	z.bits >>= n
	z.nbits -= n
}

// take reads and consumes n bits; only for headers, where no output is
// waiting (so need does not yield).
func (z *inflater) take(n uint) (int, error) {
	if err := z.need(n); err != nil {
		return 0, err
	}
	v := int(z.bits & (1<<n - 1))
	z.consume(n)
	return v, nil
}

// peekSym decodes the symbol whose code starts off bits into the bit
// buffer, without consuming anything, and returns it and its length.
func (z *inflater) peekSym(h *huffman, off uint) (int, uint, error) {
	if z.nbits < off+fastBits {
		z.peekMore()
	}
	if z.nbits >= off+fastBits {
		if e := h.fast[(z.bits>>off)&(1<<fastBits-1)]; e != 0 {
			return int(e >> 4), uint(e & 15), nil
		}
	}
	// Bit by bit, as zlib's puff does.
	code, first, index := 0, 0, 0
	for l := uint(1); l <= maxCodeLen; l++ {
		if err := z.need(off + l); err != nil {
			return 0, 0, err
		}
		code |= int(z.bits>>(off+l-1)) & 1
		count := int(h.count[l])
		if code-count < first {
			return int(h.symbol[index+code-first]), l, nil
		}
		index += count
		first += count
		first <<= 1
		code <<= 1
	}
	return 0, 0, errCorrupt
}

func (z *inflater) put(c byte) {
	z.win[z.wpos] = c
	z.wpos = (z.wpos + 1) % windowSize
	z.avail++
	z.total++
}

// decode runs the block state machine until output must be handed out
// (window full of undelivered bytes, or more input would block) or an
// error.
func (z *inflater) decode() error {
	for {
		switch z.state {
		case stDone:
			return io.EOF
		case stHeader:
			if z.avail > 0 {
				// Block headers are parsed in one go: hand out the
				// output first so that parsing may block.
				return errYield
			}
			if z.final {
				z.state = stDone
				continue
			}
			if err := z.header(); err != nil {
				return err
			}
		case stStored:
			for z.stored > 0 {
				if z.avail == windowSize {
					return errYield
				}
				if err := z.need(8); err != nil {
					return err
				}
				z.put(byte(z.bits))
				z.consume(8)
				z.stored--
			}
			z.state = stHeader
		case stCopy:
			for z.copyLen > 0 {
				if z.avail == windowSize {
					return errYield
				}
				z.put(z.win[(z.wpos-z.copyDist+windowSize)%windowSize])
				z.copyLen--
			}
			z.state = stHuffman
		case stHuffman:
			if z.avail == windowSize {
				return errYield
			}
			sym, n, err := z.peekSym(z.lit, 0)
			if err != nil {
				return err
			}
			switch {
			case sym < 256:
				z.consume(n)
				z.put(byte(sym))
				continue
			case sym == 256:
				z.consume(n)
				z.state = stHeader
				continue
			case sym > 285:
				return errCorrupt
			}
			// A length and a distance: decoded as a unit, consumed only
			// when complete, so a yield in between loses nothing.
			li := sym - 257
			le := uint(lenExtra[li])
			if err := z.need(n + le); err != nil {
				return err
			}
			length := int(lenBase[li]) + int(z.bits>>n)&(1<<le-1)
			off := n + le
			dsym, dn, err := z.peekSym(z.dist, off)
			if err != nil {
				return err
			}
			if dsym >= 30 {
				return errCorrupt
			}
			de := uint(distExtr[dsym])
			if err := z.need(off + dn + de); err != nil {
				return err
			}
			dist := int(distBase[dsym]) + int(z.bits>>(off+dn))&(1<<de-1)
			if int64(dist) > z.total || dist > windowSize {
				return errCorrupt
			}
			z.consume(off + dn + de)
			z.copyLen, z.copyDist = length, dist
			z.state = stCopy
		}
	}
}

// header reads a block header, and for a dynamic block its code tables.
func (z *inflater) header() error {
	hdr, err := z.take(3)
	if err != nil {
		return err
	}
	z.final = hdr&1 != 0
	switch hdr >> 1 {
	case 0:
		z.consume(z.nbits % 8)
		v, err := z.take(32)
		if err != nil {
			return err
		}
		n, nn := v&0xffff, v>>16
		if n != ^nn&0xffff {
			return errCorrupt
		}
		z.stored = n
		z.state = stStored
	case 1:
		z.lit, z.dist = &fixedLit, &fixedDist
		z.state = stHuffman
	case 2:
		if err := z.dynamic(); err != nil {
			return err
		}
		z.lit, z.dist = &z.dynLit, &z.dynDist
		z.state = stHuffman
	default:
		return errCorrupt
	}
	return nil
}

func (z *inflater) dynamic() error {
	v, err := z.take(14)
	if err != nil {
		return err
	}
	nlen, ndist, ncode := v&31+257, (v>>5)&31+1, (v>>10)+4
	if nlen > 286 || ndist > 30 {
		return errCorrupt
	}
	var cl [19]uint8
	for i := 0; i < ncode; i++ {
		b, err := z.take(3)
		if err != nil {
			return err
		}
		cl[clOrder[i]] = uint8(b)
	}
	var clh huffman
	if err := clh.build(cl[:]); err != nil {
		return err
	}
	var lengths [286 + 30]uint8
	for i := 0; i < nlen+ndist; {
		sym, n, err := z.peekSym(&clh, 0)
		if err != nil {
			return err
		}
		z.consume(n)
		if sym < 16 {
			lengths[i] = uint8(sym)
			i++
			continue
		}
		var rep int
		var val uint8
		switch sym {
		case 16:
			if i == 0 {
				return errCorrupt
			}
			val = lengths[i-1]
			r, err := z.take(2)
			if err != nil {
				return err
			}
			rep = 3 + r
		case 17:
			r, err := z.take(3)
			if err != nil {
				return err
			}
			rep = 3 + r
		default:
			r, err := z.take(7)
			if err != nil {
				return err
			}
			rep = 11 + r
		}
		if i+rep > nlen+ndist {
			return errCorrupt
		}
		for ; rep > 0; rep-- {
			lengths[i] = val
			i++
		}
	}
	if lengths[256] == 0 {
		return errCorrupt // no end-of-block code
	}
	if err := z.dynLit.build(lengths[:nlen]); err != nil {
		return err
	}
	return z.dynDist.build(lengths[nlen : nlen+ndist])
}
