package delivery

import (
	"context"
	"fmt"

	"github.com/crossdock/crossdock"
)

// Transformer turns an event into the body sent to a destination.
type Transformer interface {
	// Apply returns the body. EINVALID when the program fails on this
	// event; any other error (a cancelled ctx) is not the event's fault.
	Apply(ctx context.Context, ev *crossdock.Event) ([]byte, error)
}

// Template expands a URL or header template for an event.
type Template interface {
	// Expand returns the text for the event; EINVALID when the event's
	// values cannot make a valid result.
	Expand(ev *crossdock.Event) (string, error)
}

// Compiler turns the texts of a subscription (filter, transform, templates,
// secret references) into what runs per attempt. cmd/crossdock fills it
// from the filter, transform, template and secret packages; a nil field
// means the feature is not available and subscriptions using it are refused.
type Compiler struct {
	Filter    func(expr string) (crossdock.Filter, error)
	Transform func(program string) (Transformer, error)

	// Template parses a URL (url true) or header template and resolves the
	// secret references in its literal text.
	Template func(text string, url bool) (Template, error)

	// Secret resolves the secret references in a text such as a signing
	// secret.
	Secret func(text string) (string, error)
}

// plan is a subscription compiled for its attempts. Plans are immutable;
// a recompile (after a secret changed) swaps in a new one.
type plan struct {
	sub       crossdock.Subscription
	filter    crossdock.Filter
	transform Transformer
	url       Template
	headers   map[string]Template
	secret    string

	enrichURL     Template
	enrichHeaders map[string]Template
}

// compile builds the plan of a subscription with defaults applied.
func (c *Compiler) compile(sub crossdock.Subscription) (*plan, error) {
	p := &plan{sub: sub, filter: crossdock.MatchAll}
	var err error
	if sub.Filter != "" {
		if c.Filter == nil {
			return nil, crossdock.Errorf(crossdock.EINVALID, "subscription %s: filters are not available", sub.Name)
		}
		if p.filter, err = c.Filter(sub.Filter); err != nil {
			return nil, fieldError(sub.Name, "filter", err)
		}
	}
	if sub.Transform != "" {
		if c.Transform == nil {
			return nil, crossdock.Errorf(crossdock.EINVALID, "subscription %s: transforms are not available", sub.Name)
		}
		if p.transform, err = c.Transform(sub.Transform); err != nil {
			return nil, fieldError(sub.Name, "transform", err)
		}
	}
	if p.url, err = c.template(sub.Destination.URL, true); err != nil {
		return nil, fieldError(sub.Name, "destination.url", err)
	}
	if p.headers, err = c.templates(sub.Destination.Headers); err != nil {
		return nil, fieldError(sub.Name, "destination.headers", err)
	}
	if p.secret, err = c.secret(sub.Destination.Secret); err != nil {
		return nil, fieldError(sub.Name, "destination.secret", err)
	}
	if e := sub.Enrich; e != nil {
		if p.enrichURL, err = c.template(e.URL, true); err != nil {
			return nil, fieldError(sub.Name, "enrich.url", err)
		}
		if p.enrichHeaders, err = c.templates(e.Headers); err != nil {
			return nil, fieldError(sub.Name, "enrich.headers", err)
		}
	}
	return p, nil
}

// fieldError names the subscription and the field in err's message, so an
// API caller reads which one to fix; the code stays err's.
func fieldError(sub, field string, err error) error {
	code := crossdock.ErrorCode(err)
	if code == crossdock.EINTERNAL {
		return fmt.Errorf("subscription %s: %s: %w", sub, field, err)
	}
	return crossdock.Errorf(code, "subscription %s: %s: %v", sub, field, err)
}

func (c *Compiler) template(text string, url bool) (Template, error) {
	if c.Template == nil {
		return literal(text), nil
	}
	return c.Template(text, url)
}

func (c *Compiler) templates(h map[string]string) (map[string]Template, error) {
	if len(h) == 0 {
		return nil, nil
	}
	out := make(map[string]Template, len(h))
	for name, text := range h {
		t, err := c.template(text, false)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

func (c *Compiler) secret(text string) (string, error) {
	if c.Secret == nil || text == "" {
		return text, nil
	}
	return c.Secret(text)
}

// literal is the template of a text used as it is.
type literal string

func (l literal) Expand(*crossdock.Event) (string, error) { return string(l), nil }

// expandAll expands header templates for an event.
func expandAll(ts map[string]Template, ev *crossdock.Event) (map[string]string, error) {
	if len(ts) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(ts))
	for name, t := range ts {
		v, err := t.Expand(ev)
		if err != nil {
			return nil, fmt.Errorf("header %s: %w", name, err)
		}
		out[name] = v
	}
	return out, nil
}
