package config

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/crossdock/crossdock"
)

// subscriptionKeys are the keys of a subscription, in the order messages
// list them.
var subscriptionKeys = []string{"name", "topic", "filter", "enrich", "transform", "destination", "retry", "reply", "max_in_flight"}

// subscriptions reads the subscriptions list into cfg.
func (p *parser) subscriptions(e entry, cfg *Config, topicLines map[string]int) {
	names := make(map[string]int)
	for i, item := range p.list(e, "subscriptions") {
		path := fmt.Sprintf("subscriptions[%d]", i)
		m := p.mapping(item, path, subscriptionKeys)
		if m == nil {
			continue
		}
		before := len(p.problems)
		var s crossdock.Subscription
		var ok bool
		s.Name, ok = p.str(m["name"], path+".name")
		switch {
		case m["name"].val != nil && !ok:
		case s.Name == "":
			p.addf(item, path+".name", "required")
		case !crossdock.ValidName(s.Name):
			p.addf(m["name"].val, path+".name", "%s is not a valid subscription name: use 1 to 64 lower-case letters, digits, '-' or '_', starting with a letter or digit", quote(s.Name))
		case names[s.Name] != 0:
			p.addf(m["name"].val, path+".name", "duplicate subscription %s (first defined on line %d)", quote(s.Name), names[s.Name])
		default:
			names[s.Name] = m["name"].val.Line
		}
		s.Topic = p.topicRef(m["topic"], item, path+".topic", topicLines)
		s.Filter, _ = p.str(m["filter"], path+".filter")
		if s.Filter != "" && p.opts.CheckFilter != nil {
			if err := p.opts.CheckFilter(s.Filter); err != nil {
				msg := crossdock.ErrorMessage(err)
				msg = strings.TrimPrefix(msg, fmt.Sprintf("filter %q: ", s.Filter))
				p.addf(m["filter"].val, path+".filter", "invalid filter: %s", msg)
			}
		}
		s.Enrich = p.enrich(m["enrich"], path+".enrich")
		p.transform(m["transform"], path+".transform", &s)
		p.destination(m["destination"], item, path+".destination", &s.Destination)
		retry := p.retry(m["retry"], path+".retry", &s.Retry)
		s.Reply = p.reply(m["reply"], path+".reply", s, topicLines)
		if n, ok := p.integer(m["max_in_flight"], path+".max_in_flight"); ok && (n < 0 || n > 10000) {
			p.addf(m["max_in_flight"].val, path+".max_in_flight", "must be between 1 and 10000")
		} else {
			s.MaxInFlight = int(n)
		}
		if len(p.problems) > before {
			continue
		}
		s = s.WithDefaults()
		if s.Retry.InitialInterval > s.Retry.MaxInterval {
			at := retry["initial_interval"].val
			if at == nil {
				at = retry["max_interval"].val
			}
			p.addf(at, path+".retry.initial_interval", "must not exceed retry.max_interval (%v)", s.Retry.MaxInterval)
			continue
		}
		if err := s.Validate(); err != nil {
			p.addf(item, path, "%s", crossdock.ErrorMessage(err))
			continue
		}
		cfg.Subscriptions = append(cfg.Subscriptions, s)
	}
}

// topicRef reads a reference to a topic, which must be declared; item is
// the mapping that holds it, for the line of a missing one.
func (p *parser) topicRef(e entry, item *yaml.Node, key string, topicLines map[string]int) string {
	topic, ok := p.str(e, key)
	switch {
	case e.val != nil && !ok:
	case topic == "":
		p.addf(item, key, "required")
	case !crossdock.ValidTopicName(topic):
		p.addf(e.val, key, "%s is not a valid topic name: use lower-case dot-separated segments of letters, digits and '-', such as sales.order.created", quote(topic))
	case topicLines[topic] == 0:
		known := make([]string, 0, len(topicLines))
		for name := range topicLines {
			known = append(known, name)
		}
		if guess := suggest(topic, known); guess != "" {
			p.addf(e.val, key, "unknown topic %s (did you mean %q?)", quote(topic), guess)
		} else {
			p.addf(e.val, key, "unknown topic %s: declare it under topics", quote(topic))
		}
	}
	return topic
}

// enrich reads a subscription's enrichment; nil when absent or empty.
func (p *parser) enrich(e entry, path string) *crossdock.Enrichment {
	if e.val == nil || isNull(resolve(e.val)) {
		return nil
	}
	m := p.mapping(e.val, path, []string{"url", "headers", "on_not_found", "timeout"})
	if m == nil {
		return nil
	}
	en := &crossdock.Enrichment{}
	var ok bool
	en.URL, ok = p.str(m["url"], path+".url")
	switch {
	case m["url"].val != nil && !ok:
	case en.URL == "":
		p.addf(e.key, path+".url", "required: the URL to fetch the record's latest state from, such as http://crm.local/api/accounts/{{subject}}")
	default:
		p.urlTemplate(m["url"].val, path+".url", en.URL)
	}
	en.Headers = p.headers(m["headers"], path+".headers")
	if v, ok := p.str(m["on_not_found"], path+".on_not_found"); ok && v != "" {
		switch lower := strings.ToLower(v); lower {
		case crossdock.OnNotFoundDeadLetter, crossdock.OnNotFoundSkip:
			en.OnNotFound = lower
		default:
			p.addf(m["on_not_found"].val, path+".on_not_found", "%s is not one of dead_letter, skip", quote(v))
		}
	}
	en.Timeout, _ = p.duration(m["timeout"], path+".timeout")
	return en
}

// transform reads a subscription's jq program.
func (p *parser) transform(e entry, path string, s *crossdock.Subscription) {
	var ok bool
	s.Transform, ok = p.str(e, path)
	if !ok || s.Transform == "" || p.opts.CheckTransform == nil {
		return
	}
	if err := p.opts.CheckTransform(s.Transform); err != nil {
		msg := crossdock.ErrorMessage(err)
		msg = strings.TrimPrefix(msg, fmt.Sprintf("transform %q: ", s.Transform))
		msg = strings.TrimPrefix(msg, "transform: ")
		p.addf(e.val, path, "invalid transform: %s", msg)
	}
}

// reply reads where a subscription publishes its destination's answers;
// nil when absent or empty.
func (p *parser) reply(e entry, path string, s crossdock.Subscription, topicLines map[string]int) *crossdock.Reply {
	if e.val == nil || isNull(resolve(e.val)) {
		return nil
	}
	m := p.mapping(e.val, path, []string{"topic"})
	if m == nil {
		return nil
	}
	r := &crossdock.Reply{Topic: p.topicRef(m["topic"], e.key, path+".topic", topicLines)}
	if r.Topic != "" && r.Topic == s.Topic && s.Filter == "" {
		p.addf(m["topic"].val, path+".topic", "is the subscription's own topic: without a filter every answer would be delivered again, forever; reply to another topic")
	}
	return r
}

// destinationKeys are the keys of a destination.
var destinationKeys = []string{"url", "method", "headers", "secret", "timeout"}

// destination reads a subscription's destination.
func (p *parser) destination(e entry, item *yaml.Node, path string, d *crossdock.Destination) {
	if e.val == nil {
		p.addf(item, path, "required: a mapping with url and optionally method, headers, secret and timeout")
		return
	}
	m := p.mapping(e.val, path, destinationKeys)
	if m == nil {
		return
	}
	var ok bool
	d.URL, ok = p.str(m["url"], path+".url")
	switch {
	case m["url"].val != nil && !ok:
	case d.URL == "":
		p.addf(e.key, path+".url", "required")
	default:
		p.urlTemplate(m["url"].val, path+".url", d.URL)
	}
	if v, ok := p.str(m["method"], path+".method"); ok && v != "" {
		switch upper := strings.ToUpper(v); upper {
		case "POST", "PUT", "PATCH":
			d.Method = upper
		default:
			p.addf(m["method"].val, path+".method", "%s is not one of POST, PUT, PATCH", quote(v))
		}
	}
	d.Headers = p.headers(m["headers"], path+".headers")
	if se := m["secret"]; se.val != nil {
		n := resolve(se.val)
		if n.Kind != yaml.ScalarNode || isNull(n) {
			p.addf(se.val, path+".secret", "must be a string, not %s", describe(n))
		} else {
			d.Secret = n.Value
			p.signingSecret(se.val, path+".secret", n.Value)
		}
	}
	if t, ok := p.duration(m["timeout"], path+".timeout"); ok {
		d.Timeout = t
	}
}

// signingSecret checks a destination's signing secret: a whsec_ secret
// written out, or one reference to a secret that holds it.
func (p *parser) signingSecret(n *yaml.Node, key, v string) {
	if !strings.Contains(v, refOpen) {
		p.secrets = append(p.secrets, v)
		if !validSecret(v) {
			p.addf(n, key, "%s", secretHelp)
		}
		return
	}
	refs, ok := p.references(n, key, v)
	if !ok {
		return
	}
	if len(refs) != 1 || refs[0].start != 0 || refs[0].end != len(v) {
		// Text around a reference may be part of a secret: not shown.
		p.secrets = append(p.secrets, v)
		p.addf(n, key, `must be one reference ${secret:NAME} with nothing around it, or a secret written out as "whsec_..."`)
		return
	}
	p.checkSecrets(n, key, refs)
}

// retry reads a subscription's retry policy and returns its entries.
func (p *parser) retry(e entry, path string, r *crossdock.RetryPolicy) map[string]entry {
	if e.val == nil {
		return nil
	}
	m := p.mapping(e.val, path, []string{"max_attempts", "initial_interval", "multiplier", "max_interval"})
	if m == nil {
		return nil
	}
	if n, ok := p.integer(m["max_attempts"], path+".max_attempts"); ok {
		if n < 0 || n > 1_000_000 {
			p.addf(m["max_attempts"].val, path+".max_attempts", "must be between 1 and 1000000")
		} else {
			r.MaxAttempts = int(n)
		}
	}
	r.InitialInterval, _ = p.duration(m["initial_interval"], path+".initial_interval")
	r.MaxInterval, _ = p.duration(m["max_interval"], path+".max_interval")
	if f, ok := p.number(m["multiplier"], path+".multiplier"); ok {
		if f != 0 && f < 1 || f > 100 {
			p.addf(m["multiplier"].val, path+".multiplier", "must be between 1 and 100")
		} else {
			r.Multiplier = f
		}
	}
	return m
}
