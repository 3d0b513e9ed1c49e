package srs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

const (
	// maxSecretsFile bounds the secrets file; a real one holds a few lines.
	maxSecretsFile = 64 << 10
	// maxSecretLine is what postsrsd 1.x reads per line (fgets into 1024
	// bytes); it would silently split a longer line into several secrets.
	maxSecretLine = 1023
)

// LoadSecrets reads a postsrsd secrets file (docker-mailserver keeps it at
// /var/mail-state/etc/postsrsd.secret): one secret per line, the first one
// signs, all verify. See ParseSecrets for the exact rules.
func LoadSecrets(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("srs: opening secrets: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecretsFile+1))
	if err != nil {
		return nil, fmt.Errorf("srs: reading secrets %s: %w", path, err)
	}
	if len(data) > maxSecretsFile {
		return nil, fmt.Errorf("srs: secrets file %s larger than %d bytes", path, maxSecretsFile)
	}
	secrets, err := ParseSecrets(data)
	if err != nil {
		return nil, fmt.Errorf("srs: secrets file %s: %w", path, err)
	}
	return secrets, nil
}

// ParseSecrets splits the content of a secrets file the way postsrsd does
// (fgets, then strtok on "\r\n"): each line yields the bytes up to its first
// CR or LF after skipping leading CRs; empty lines are skipped. Spaces are
// part of the secret and are not trimmed (postsrsd does not trim them
// either). Lines longer than postsrsd's 1023-byte buffer and NUL bytes are
// refused rather than reproduced, since postsrsd would have used a different
// key than the file shows.
func ParseSecrets(data []byte) ([]string, error) {
	var secrets []string
	for n := 1; len(data) > 0; n++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(line) > maxSecretLine {
			return nil, fmt.Errorf("line %d is longer than %d bytes", n, maxSecretLine)
		}
		line = bytes.TrimLeft(line, "\r")
		if i := bytes.IndexByte(line, '\r'); i >= 0 {
			line = line[:i]
		}
		if len(line) == 0 {
			continue
		}
		if bytes.IndexByte(line, 0) >= 0 {
			return nil, fmt.Errorf("line %d contains a NUL byte", n)
		}
		secrets = append(secrets, string(line))
	}
	if len(secrets) == 0 {
		return nil, errors.New("no secrets")
	}
	return secrets, nil
}
