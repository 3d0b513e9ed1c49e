package imapserver

import (
	"bufio"
	"compress/flate"
	"context"
	"io"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailstead/mailstead/internal/imapserver/imapwire"
)

// COMPRESS=DEFLATE (RFC 4978).
//
// A deflate compressor costs about 800 KiB (hash chains and window), a
// decompressor about 40 KiB. Thousands of idle sessions cannot each keep a
// compressor, so compressWriter holds one only while the session is busy:
// when the session enters IDLE, or has waited Config.CompressRelease for
// its next command, the compressor is flushed and returned to a pool
// shared by all sessions, and taken again for the next response.
//
// This is sound because a raw deflate stream is just a sequence of blocks:
// after a sync flush the stream ends on a byte boundary, and a fresh (or
// Reset) compressor continues it with new blocks that merely do not refer
// back to data before the flush. The client's decompressor neither knows
// nor cares. What is lost is the shared history across the release, a
// few bytes of compression per response after an idle period.
//
// The decompressor (inflater, see inflate.go) cannot be released the same
// way: the client's compressor may refer back to anything it sent in the
// last 32 KiB, so its window must persist for the whole session.

// compressLevel is zlib's default, as Dovecot uses.
const compressLevel = flate.DefaultCompression

var flateWriters sync.Pool // *flate.Writer at compressLevel

// compressWriter is the compressing half of COMPRESS: the session's
// bufio.Writer writes into it, it writes deflate blocks to dst. release
// may run in a timer goroutine while the session waits for input, hence
// the mutex.
type compressWriter struct {
	mu   sync.Mutex
	dst  io.Writer
	fw   *flate.Writer // nil while released
	err  error
	held prometheus.Gauge
}

func (c *compressWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if c.fw == nil {
		if w, ok := flateWriters.Get().(*flate.Writer); ok {
			w.Reset(c.dst)
			c.fw = w
		} else {
			// Only fails for an invalid level.
			c.fw, _ = flate.NewWriter(c.dst, compressLevel)
		}
		c.held.Inc()
	}
	n, err := c.fw.Write(p)
	if err != nil {
		c.err = err
	}
	return n, err
}

// Flush ends the current deflate block with a sync flush so that the
// client can decompress everything written so far.
func (c *compressWriter) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	if c.fw != nil {
		c.err = c.fw.Flush()
	}
	return c.err
}

// release flushes the compressor and puts it back into the pool.
func (c *compressWriter) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fw == nil {
		return
	}
	if c.err == nil {
		c.err = c.fw.Flush()
	}
	// Drop the reference to the connection before pooling.
	c.fw.Reset(io.Discard)
	flateWriters.Put(c.fw)
	c.fw = nil
	c.held.Dec()
}

func (s *session) releaseCompressor() {
	if s.cw != nil {
		s.cw.release()
	}
}

func (s *session) cmdCompress(ctx context.Context, cmd *imapwire.Command) error {
	a := cmd.Args.(*imapwire.CompressArgs)
	if s.cw != nil {
		return no("COMPRESSIONACTIVE", "DEFLATE is already active")
	}
	if a.Mechanism != "DEFLATE" {
		return bad("Unsupported compression mechanism %s", a.Mechanism)
	}
	// crypto/tls never compresses, so there is no TLS compression to
	// refuse COMPRESS for.
	s.w.Status(cmd.Tag, "OK", "", "DEFLATE active")
	if err := s.flush(); err != nil {
		s.state = stateLogout
		return errBye
	}
	s.srv.metrics.commands.WithLabelValues("compress", "ok").Inc()
	// Whatever the client sent after the command, possibly already in
	// s.br's buffer, is compressed: the decompressor reads through it.
	s.br = bufio.NewReaderSize(newInflater(s.br), 4096)
	s.cw = &compressWriter{dst: deadlineWriter{s.conn}, held: s.srv.metrics.compressors}
	s.bw = bufio.NewWriterSize(s.cw, 4096)
	s.setupWire()
	return errBye // the tagged response is out
}
