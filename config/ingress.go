package config

import (
	"fmt"
)

// Ingress holds the endpoints through which other systems push events.
type Ingress struct {
	// Dataverse lists the topics Dataverse webhooks publish to, each at
	// POST /v1/ingress/dataverse/{topic}.
	Dataverse []DataverseIngress
}

// DataverseIngress lets a Dataverse webhook publish to a topic.
type DataverseIngress struct {
	// Topic is the declared topic the webhook's events are published to.
	Topic string

	// Key is the key the webhook authenticates with, as written: a value
	// or a ${secret:NAME} reference that cmd/crossdock resolves.
	Key string
}

// ingress reads the ingress section.
func (p *parser) ingress(e entry, out *Ingress, topicLines map[string]int) {
	m := p.section(e, "ingress", []string{"dataverse"})
	// A topic may be listed twice, with the old and the new key while a key
	// is rotated; the same topic with the same key twice is a mistake.
	lines := make(map[DataverseIngress]int)
	for i, item := range p.list(m["dataverse"], "ingress.dataverse") {
		path := fmt.Sprintf("ingress.dataverse[%d]", i)
		im := p.mapping(item, path, []string{"topic", "key"})
		if im == nil {
			continue
		}
		before := len(p.problems)
		var d DataverseIngress
		d.Topic = p.topicRef(im["topic"], item, path+".topic", topicLines)
		var ok bool
		d.Key, ok = p.str(im["key"], path+".key")
		switch {
		case im["key"].val != nil && !ok:
		case d.Key == "":
			p.addf(item, path+".key", "required: the key Dataverse sends as ?code= or x-api-key, best as a reference ${secret:NAME}")
		default:
			p.secretValue(im["key"].val, path+".key", d.Key)
		}
		if len(p.problems) > before {
			continue
		}
		if first := lines[d]; first != 0 {
			p.addf(item, path, "the same topic and key as the entry on line %d", first)
			continue
		}
		lines[d] = item.Line
		out.Dataverse = append(out.Dataverse, d)
	}
}
