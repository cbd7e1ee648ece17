package secret

import (
	"context"
	"fmt"
	"log/slog"
)

// ReplaceAttr redacts an attribute; use it as slog.HandlerOptions'
// ReplaceAttr, which the standard handlers also call for the message. It
// returns the attribute with Redact applied to its key and to its value
// when that is a string, an error, or any other value whose printed form
// holds a secret (then the value becomes the redacted printed form).
func (s *Store) ReplaceAttr(_ []string, a slog.Attr) slog.Attr {
	if s.redactor() == nil {
		return a
	}
	return s.redactAttr(a)
}

// Handler returns a slog.Handler that redacts the message and every
// attribute, as ReplaceAttr does, before h sees the record. Attributes
// given to WithAttrs are redacted then, with the values known at that time.
func (s *Store) Handler(h slog.Handler) slog.Handler {
	return &handler{store: s, next: h}
}

type handler struct {
	store *Store
	next  slog.Handler
}

var _ slog.Handler = (*handler)(nil)

// Enabled reports whether the wrapped handler handles the level.
func (h *handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle passes a redacted copy of the record to the wrapped handler.
func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	if h.store.redactor() == nil {
		return h.next.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, h.store.Redact(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.store.redactAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

// WithAttrs returns a handler whose wrapped handler has the attributes,
// redacted.
func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = h.store.redactAttr(a)
	}
	return &handler{store: h.store, next: h.next.WithAttrs(red)}
}

// WithGroup returns a handler whose wrapped handler opens the group.
func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{store: h.store, next: h.next.WithGroup(name)}
}

func (s *Store) redactAttr(a slog.Attr) slog.Attr {
	return slog.Attr{Key: s.Redact(a.Key), Value: s.redactValue(a.Value)}
}

func (s *Store) redactValue(v slog.Value) slog.Value {
	v = v.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.StringValue(s.Redact(v.String()))
	case slog.KindGroup:
		attrs := v.Group()
		red := make([]slog.Attr, len(attrs))
		for i, a := range attrs {
			red[i] = s.redactAttr(a)
		}
		return slog.GroupValue(red...)
	case slog.KindAny:
		var text string
		switch x := v.Any().(type) {
		case error:
			text = x.Error()
		case []byte:
			text = string(x)
		default:
			text = fmt.Sprintf("%+v", x)
		}
		if red := s.Redact(text); red != text {
			return slog.StringValue(red)
		}
		return v
	default: // numbers, booleans, times and durations hold no secret
		return v
	}
}
