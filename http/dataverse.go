package http

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/dataverse"
)

// Where a Dataverse webhook puts its key: the WebhookKey authentication
// option adds ?code=KEY, the HttpHeader option a header of the user's
// choice, which crossdock fixes as x-api-key.
const (
	dataverseKeyQuery  = "code"
	dataverseKeyHeader = "X-Api-Key"
)

// handleDataverse turns a Dataverse webhook request into one event on the
// topic of the ingress it names, and answers 202 as publishing does once
// the broker has stored it. A request without a key configured for the
// topic is refused before its body is read, and stores nothing.
func (s *Server) handleDataverse(w http.ResponseWriter, r *http.Request) error {
	topic := r.PathValue("topic")
	if err := s.authenticateDataverse(r, topic); err != nil {
		return err
	}
	buf := bufferPool.Get().(*bytes.Buffer)
	defer putBuffer(buf)
	if err := readBody(w, r, buf, s.maxEventSize()); err != nil {
		return err
	}
	ev, err := dataverse.Map(buf.Bytes(), r.Header)
	if err != nil {
		return err
	}
	results, err := s.publish(r.Context(), topic, []*crossdock.Event{ev})
	if err != nil {
		return err
	}
	buf.Reset() // the event holds no reference to the body
	out := appendPublishResult(buf.AvailableBuffer(), results[0])
	out = append(out, '\n')
	w.Header()["Content-Type"] = headerJSON
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(out) // the event is stored; Dataverse retries and gets duplicate:true
	return nil
}

// authenticateDataverse returns ENOTFOUND when no Dataverse ingress is
// configured for the topic, and EUNAUTHORIZED unless the request's code
// query parameter or x-api-key header equals the key of one that is. Keys
// are compared in constant time, through their SHA-256 digests so that
// their lengths do not show either.
func (s *Server) authenticateDataverse(r *http.Request, topic string) error {
	var keys [][sha256.Size]byte
	unreadable := false
	for _, in := range s.Dataverse {
		if in.Topic != topic {
			continue
		}
		key := in.Key
		if s.ResolveKey != nil {
			var err error
			if key, err = s.ResolveKey(key); err != nil {
				// The error names the secret, never a value.
				s.logger().Error("resolve Dataverse ingress key", "topic", topic, "error", err)
				unreadable = true
				continue
			}
		}
		// An empty key would let through every request without one.
		if key != "" {
			keys = append(keys, sha256.Sum256([]byte(key)))
		}
	}
	if len(keys) == 0 && unreadable {
		return crossdock.Errorf(crossdock.EUNAVAILABLE, "the key of the Dataverse ingress for topic %s cannot be read now", topic)
	}
	if len(keys) == 0 {
		return crossdock.Errorf(crossdock.ENOTFOUND, "no Dataverse ingress is configured for topic %q", topic)
	}
	presented := append(r.URL.Query()[dataverseKeyQuery], r.Header.Values(dataverseKeyHeader)...)
	match := 0
	for _, p := range presented {
		digest := sha256.Sum256([]byte(p))
		for i := range keys {
			match |= subtle.ConstantTimeCompare(digest[:], keys[i][:])
		}
	}
	if match != 1 {
		return crossdock.Errorf(crossdock.EUNAUTHORIZED,
			"the request carries no valid key for the Dataverse ingress of topic %s: send the key as the code query parameter (WebhookKey) or the x-api-key header (HttpHeader)", topic)
	}
	return nil
}
