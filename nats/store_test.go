package nats_test

import (
	"context"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
)

// TestSubscriptionStore stores, replaces, lists and deletes subscriptions,
// and finds them again after a restart on the same data directory.
func TestSubscriptionStore(t *testing.T) {
	e := openEmbedded(t)
	ctx := ctxT(t)
	st, err := e.b.SubscriptionStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := st.List(ctx); err != nil || len(got) != 0 {
		t.Fatalf("empty List = %v, %v", got, err)
	}
	a := sub("a", "sales.order.created")
	a.Destination.Secret = "${secret:hook}"
	a.Destination.Headers = map[string]string{"Authorization": "Bearer ${secret:erp}"}
	b := sub("b", "sales.order.created")
	for _, s := range []crossdock.Subscription{b, a, sub("c", "x")} {
		if err := st.Put(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	b.Filter = `type == "x"`
	if err := st.Put(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "never"); err != nil {
		t.Fatalf("Delete of an unknown name = %v", err)
	}
	wantCode(t, st.Put(ctx, sub("Bad Name", "x")), crossdock.EINVALID)

	e.reopen()
	if st, err = e.b.SubscriptionStore(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "a" || got[1].Name != "b" {
		t.Fatalf("List = %+v", got)
	}
	if got[0].Destination.Secret != "${secret:hook}" || got[0].Destination.Headers["Authorization"] != "Bearer ${secret:erp}" {
		t.Errorf("a = %+v", got[0].Destination)
	}
	if got[1].Filter != `type == "x"` {
		t.Errorf("b was not replaced: %+v", got[1])
	}
	// The bucket is not a topic.
	if topics, err := e.b.Topics(ctx); err != nil || len(topics) != 0 {
		t.Errorf("Topics = %v, %v", topics, err)
	}
}

// TestDeleteTopicAndSubscription deletes a subscription's consumer and
// dead-letter queue, then its topic.
func TestDeleteTopicAndSubscription(t *testing.T) {
	e := openEmbedded(t)
	ctx := ctxT(t)
	ensureTopic(t, e.b, "sales.order.created")
	s := sub("s1", "sales.order.created")
	r := &recorder{act: func(ctx context.Context, m crossdock.Message) {
		_ = m.DeadLetter(ctx, crossdock.ReasonRejected, "no")
	}}
	c, err := e.b.Consume(ctx, s, r.handle)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, e.b, "sales.order.created", newEvent("e1"))
	waitFor(t, 10*time.Second, "a dead letter", func() bool {
		st, err := e.b.Stats(ctx, s)
		return err == nil && st.DeadLetters == 1
	})
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.b.DeleteSubscription(ctx, s); err != nil {
		t.Fatal(err)
	}
	_, err = e.b.Stats(ctx, s)
	wantCode(t, err, crossdock.ENOTFOUND)
	if dls, _, err := e.b.DeadLetters(ctx, s, "", 10); err != nil || len(dls) != 0 {
		t.Errorf("dead letters after delete = %v, %v", dls, err)
	}
	if err := e.b.DeleteSubscription(ctx, s); err != nil {
		t.Fatalf("second DeleteSubscription = %v", err)
	}

	if err := e.b.DeleteTopic(ctx, "sales.order.created"); err != nil {
		t.Fatal(err)
	}
	_, err = e.b.Topic(ctx, "sales.order.created")
	wantCode(t, err, crossdock.ENOTFOUND)
	_, err = e.b.Publish(ctx, "sales.order.created", newEvent("e2"))
	wantCode(t, err, crossdock.ENOTFOUND)
	wantCode(t, e.b.DeleteTopic(ctx, "sales.order.created"), crossdock.ENOTFOUND)
	wantCode(t, e.b.DeleteTopic(ctx, "Not A Topic"), crossdock.ENOTFOUND)
}
