package nats_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	cdnats "github.com/crossdock/crossdock/nats"
)

// listAll pages through the dead letters with the given page size.
func listAll(t *testing.T, b *cdnats.Broker, s crossdock.Subscription, limit int) ([]crossdock.DeadLetter, int) {
	t.Helper()
	var all []crossdock.DeadLetter
	cursor, pages := "", 0
	for {
		page, next, err := b.DeadLetters(ctxT(t), s, cursor, limit)
		if err != nil {
			t.Fatalf("dead letters at %q: %v", cursor, err)
		}
		if len(page) > limit {
			t.Fatalf("page of %d for a limit of %d", len(page), limit)
		}
		pages++
		all = append(all, page...)
		if next == "" {
			return all, pages
		}
		if pages > 100 {
			t.Fatal("paging does not end")
		}
		cursor = next
	}
}

func ids(dls []crossdock.DeadLetter) []string {
	var out []string
	for _, d := range dls {
		out = append(out, d.ID)
	}
	return out
}

func testDeadLetters(t *testing.T, e *env) {
	b := e.b
	ctx := ctxT(t)
	ensureTopic(t, b, "dl")
	target := sub("target", "dl")
	target.MaxInFlight = 1 // dead letters in publish order
	bystander := sub("bystander", "dl")

	// target rejects every event on its first attempt and acks afterwards.
	var mu sync.Mutex
	rejected := map[string]bool{}
	rt := &recorder{act: func(ctx context.Context, m crossdock.Message) {
		id := m.Event().ID
		mu.Lock()
		first := !rejected[id]
		rejected[id] = true
		mu.Unlock()
		if first {
			if err := m.DeadLetter(ctx, crossdock.ReasonRejected, "HTTP 400 for "+id); err != nil {
				t.Errorf("dead-letter %s: %v", id, err)
			}
			return
		}
		_ = m.Ack(ctx)
	}}
	rb := &recorder{}
	consume(t, b, target, rt)
	consume(t, b, bystander, rb)

	// No dead letters yet: an empty list.
	if dls, next, err := b.DeadLetters(ctx, sub("never", "dl"), "", 0); err != nil || len(dls) != 0 || next != "" {
		t.Fatalf("dead letters of a subscription without any = %v, %q, %v", dls, next, err)
	}

	var want []string
	for i := range 7 {
		id := fmt.Sprintf("d%d", i)
		want = append(want, id)
		publish(t, b, "dl", newEvent(id))
	}
	waitFor(t, 10*time.Second, "seven dead letters", func() bool { return stats(t, b, target).DeadLetters == 7 })

	all, pages := listAll(t, b, target, 3)
	if fmt.Sprint(ids(all)) != fmt.Sprint(want) || pages != 3 {
		t.Fatalf("listed %v in %d pages, want %v in 3", ids(all), pages, want)
	}
	d := all[2]
	if d.Reason != crossdock.ReasonRejected || d.Description != "HTTP 400 for d2" || d.Attempts != 1 ||
		d.Topic != "dl" || d.Subscription != "target" || d.Event == nil || string(d.Event.Data) != `{"id":"d2"}` ||
		time.Since(d.DeadLetteredAt) > time.Minute {
		t.Errorf("dead letter = %+v", d)
	}
	if one, _ := listAll(t, b, target, 500); len(one) != 7 {
		t.Errorf("one big page held %d", len(one))
	}
	for _, bad := range []string{"x", "0", "-1", "1.5"} {
		_, _, err := b.DeadLetters(ctx, target, bad, 10)
		wantCode(t, err, crossdock.EINVALID)
	}

	// Resubmit one: only target gets it again, as a first attempt.
	n, err := b.ResubmitDeadLetters(ctx, target, []string{"d2", "unknown"})
	if err != nil || n != 1 {
		t.Fatalf("resubmit d2 = %d, %v", n, err)
	}
	waitFor(t, 10*time.Second, "d2 again", func() bool { return rt.count("d2") == 2 })
	last := rt.deliveries()[len(rt.deliveries())-1]
	if last.id != "d2" || last.attempt != 1 {
		t.Errorf("resubmitted delivery = %+v, want d2 attempt 1", last)
	}
	publish(t, b, "dl", newEvent("marker"))
	waitFor(t, 10*time.Second, "the bystander's marker", func() bool { return rb.count("marker") == 1 })
	if rb.count("d2") != 1 {
		t.Errorf("the bystander got d2 %d times, want once", rb.count("d2"))
	}
	waitFor(t, 10*time.Second, "the marker dead-lettered", func() bool { return stats(t, b, target).DeadLetters == 7 })
	all, _ = listAll(t, b, target, 2)
	if fmt.Sprint(ids(all)) != "[d0 d1 d3 d4 d5 d6 marker]" {
		t.Errorf("after resubmitting d2: %v", ids(all))
	}

	// Delete one.
	if err := b.DeleteDeadLetter(ctx, target, "d3"); err != nil {
		t.Fatalf("delete d3: %v", err)
	}
	wantCode(t, b.DeleteDeadLetter(ctx, target, "d3"), crossdock.ENOTFOUND)
	wantCode(t, b.DeleteDeadLetter(ctx, bystander, "d0"), crossdock.ENOTFOUND)

	// Resubmit the rest.
	n, err = b.ResubmitDeadLetters(ctx, target, nil)
	if err != nil || n != 6 {
		t.Fatalf("resubmit all = %d, %v", n, err)
	}
	waitFor(t, 10*time.Second, "the six resubmitted", func() bool {
		for _, id := range []string{"d0", "d1", "d4", "d5", "d6", "marker"} {
			if rt.count(id) != 2 {
				return false
			}
		}
		return true
	})
	if rt.count("d3") != 1 {
		t.Errorf("the deleted dead letter d3 came back")
	}
	if all, _ := listAll(t, b, target, 50); len(all) != 0 {
		t.Errorf("dead letters left after resubmitting all: %v", ids(all))
	}
	if st := stats(t, b, target); st.DeadLetters != 0 {
		t.Errorf("stats after resubmitting all = %+v", st)
	}
}

func TestDeadLetterTwiceReplaces(t *testing.T) {
	b := MustOpen(t, cdnats.Config{DataDir: t.TempDir()})
	ensureTopic(t, b, "twice")
	s := sub("twice", "twice")
	r := &recorder{act: func(ctx context.Context, m crossdock.Message) {
		_ = m.DeadLetter(ctx, crossdock.ReasonMaxDeliveryCountExceeded, fmt.Sprintf("attempt %d", m.Attempt()))
	}}
	consume(t, b, s, r)
	publish(t, b, "twice", newEvent("again"))
	waitFor(t, 10*time.Second, "a dead letter", func() bool { return stats(t, b, s).DeadLetters == 1 })
	n, err := b.ResubmitDeadLetters(ctxT(t), s, []string{"again"})
	if err != nil || n != 1 {
		t.Fatalf("resubmit = %d, %v", n, err)
	}
	waitFor(t, 10*time.Second, "the second delivery", func() bool { return r.count("again") == 2 })
	waitFor(t, 10*time.Second, "one dead letter again", func() bool {
		all, _ := listAll(t, b, s, 10)
		return len(all) == 1 && all[0].ID == "again"
	})
	if st := stats(t, b, s); st.DeadLetters != 1 {
		t.Errorf("dead-lettering an event twice left %d records", st.DeadLetters)
	}
	// A long id still makes a subject token.
	long := strings.Repeat("x", 300)
	publish(t, b, "twice", newEvent(long))
	waitFor(t, 10*time.Second, "the long id's dead letter", func() bool { return stats(t, b, s).DeadLetters == 2 })
	if err := b.DeleteDeadLetter(ctxT(t), s, long); err != nil {
		t.Errorf("delete the long id's dead letter: %v", err)
	}
}
