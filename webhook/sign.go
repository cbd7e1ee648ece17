package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/crossdock/crossdock"
)

// SecretPrefix starts every Standard Webhooks signing secret.
const SecretPrefix = "whsec_"

// Key sizes accepted by ParseSecret. The specification recommends 24 to 64
// random bytes; fewer than 16 is too weak to sign with.
const (
	MinKeySize = 16
	MaxKeySize = 64
)

// DefaultTolerance is how far webhook-timestamp may be from now when Verify
// is given no tolerance.
const DefaultTolerance = 5 * time.Minute

// ParseSecret returns the HMAC key of one secret "whsec_<base64 key>". Its
// errors are EINVALID and name the problem without repeating the secret.
func ParseSecret(secret string) ([]byte, error) {
	if secret == "" {
		return nil, crossdock.Errorf(crossdock.EINVALID, "webhook secret is empty")
	}
	enc, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, crossdock.Errorf(crossdock.EINVALID, "webhook secret must start with %q", SecretPrefix)
	}
	// Accept the key with or without base64 padding.
	key, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(enc, "="))
	if err != nil {
		return nil, crossdock.Errorf(crossdock.EINVALID, "webhook secret is not valid base64 after %q", SecretPrefix)
	}
	if len(key) < MinKeySize || len(key) > MaxKeySize {
		return nil, crossdock.Errorf(crossdock.EINVALID, "webhook secret key is %d bytes; use %d to %d random bytes", len(key), MinKeySize, MaxKeySize)
	}
	return key, nil
}

// signingKey is the HMAC key of one secret with a pool of keyed HMAC
// states: keying HMAC-SHA256 costs more than signing a small body.
type signingKey struct {
	key  []byte
	macs sync.Pool // *macState
}

type macState struct {
	mac    hash.Hash
	prefix []byte
	sum    [sha256.Size]byte
}

// parseSecrets returns the keys of one or more space-separated secrets;
// several are active while a secret is being rotated.
func parseSecrets(secrets string) ([]*signingKey, error) {
	fields := strings.Fields(secrets)
	if len(fields) == 0 {
		return nil, crossdock.Errorf(crossdock.EINVALID, "webhook secret is empty")
	}
	keys := make([]*signingKey, 0, len(fields))
	for i, f := range fields {
		key, err := ParseSecret(f)
		if err != nil {
			if len(fields) > 1 {
				return nil, crossdock.Errorf(crossdock.EINVALID, "secret %d of %d: %s", i+1, len(fields), crossdock.ErrorMessage(err))
			}
			return nil, err
		}
		keys = append(keys, &signingKey{key: key})
	}
	return keys, nil
}

// appendSignature appends "v1,<base64 HMAC-SHA256(key, id.ts.body)>" to dst.
func (k *signingKey) appendSignature(dst []byte, id, ts string, body []byte) []byte {
	st, _ := k.macs.Get().(*macState)
	if st == nil {
		st = &macState{mac: hmac.New(sha256.New, k.key), prefix: make([]byte, 0, 64)}
	} else {
		st.mac.Reset()
	}
	st.prefix = append(st.prefix[:0], id...)
	st.prefix = append(st.prefix, '.')
	st.prefix = append(st.prefix, ts...)
	st.prefix = append(st.prefix, '.')
	st.mac.Write(st.prefix)
	st.mac.Write(body)
	sum := st.mac.Sum(st.sum[:0])
	dst = append(dst, "v1,"...)
	dst = base64.StdEncoding.AppendEncode(dst, sum)
	k.macs.Put(st)
	return dst
}

// appendSignatures appends the space-separated v1 signatures of a message,
// one per key, to dst.
func appendSignatures(dst []byte, keys []*signingKey, id, ts string, body []byte) []byte {
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = k.appendSignature(dst, id, ts, body)
	}
	return dst
}

// Sign returns the webhook-signature header value of a message: "v1,<base64
// HMAC-SHA256 of msgID.timestamp.body>", one space-separated signature per
// secret when secret holds several. It returns EINVALID for a malformed
// secret.
func Sign(secret, msgID string, ts time.Time, body []byte) (string, error) {
	keys, err := parseSecrets(secret)
	if err != nil {
		return "", err
	}
	return string(appendSignatures(nil, keys, msgID, strconv.FormatInt(ts.Unix(), 10), body)), nil
}

// Verify checks the Standard Webhooks headers of a received request against
// one or more space-separated secrets: some v1 signature in
// webhook-signature must match, and webhook-timestamp must be within
// tolerance of now (DefaultTolerance when tolerance is not positive). It
// returns EINVALID for a malformed secret and EUNAUTHORIZED for a missing,
// malformed, stale or unmatched signature.
func Verify(secret string, h http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	keys, err := parseSecrets(secret)
	if err != nil {
		return err
	}
	id, tsText, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	switch {
	case id == "":
		return crossdock.Errorf(crossdock.EUNAUTHORIZED, "webhook-id header is missing")
	case tsText == "":
		return crossdock.Errorf(crossdock.EUNAUTHORIZED, "webhook-timestamp header is missing")
	case sigs == "":
		return crossdock.Errorf(crossdock.EUNAUTHORIZED, "webhook-signature header is missing")
	}
	sec, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return crossdock.Errorf(crossdock.EUNAUTHORIZED, "webhook-timestamp is not a unix time in seconds")
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	// Compare in seconds: a Duration cannot hold the gap to an absurd timestamp.
	nowSec, limit := now.Unix(), int64(tolerance/time.Second)
	switch {
	case sec < nowSec-limit:
		return crossdock.Errorf(crossdock.EUNAUTHORIZED, "webhook-timestamp is too old")
	case sec > nowSec+limit:
		return crossdock.Errorf(crossdock.EUNAUTHORIZED, "webhook-timestamp is in the future")
	}
	var buf []byte
	for _, key := range keys {
		buf = key.appendSignature(buf[:0], id, tsText, body)
		want := buf[len("v1,"):]
		for _, sig := range strings.Fields(sigs) {
			version, value, ok := strings.Cut(sig, ",")
			if ok && version == "v1" && hmac.Equal([]byte(value), want) {
				return nil
			}
		}
	}
	return crossdock.Errorf(crossdock.EUNAUTHORIZED, "no webhook signature matches")
}

// keyCache remembers the keys of the secrets a Sender has seen, so the hot
// path does not decode base64 on every delivery.
type keyCache struct {
	mu   sync.RWMutex
	keys map[string][]*signingKey
}

// maxCachedSecrets bounds the cache; past it the cache starts over, which
// only costs a decode per secret.
const maxCachedSecrets = 1024

func (c *keyCache) get(secret string) ([]*signingKey, error) {
	c.mu.RLock()
	keys, ok := c.keys[secret]
	c.mu.RUnlock()
	if ok {
		return keys, nil
	}
	keys, err := parseSecrets(secret)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.keys == nil || len(c.keys) >= maxCachedSecrets {
		c.keys = make(map[string][]*signingKey)
	}
	c.keys[secret] = keys
	c.mu.Unlock()
	return keys, nil
}
