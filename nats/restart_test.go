package nats_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	cdnats "github.com/crossdock/crossdock/nats"
)

// testReopen closes the broker and opens it again on the same storage:
// topics, events, dedup entries and the consumer's position survive.
func testReopen(t *testing.T, e *env) {
	ensureTopic(t, e.b, "durable")
	s := sub("keeper", "durable")
	r := &recorder{}
	c, err := e.b.Consume(ctxT(t), s, r.handle)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		publish(t, e.b, "durable", newEvent(fmt.Sprintf("k%d", i)))
	}
	waitFor(t, 10*time.Second, "three deliveries", func() bool { return len(r.ids()) == 3 })
	stop(t, c)
	publish(t, e.b, "durable", newEvent("k4"), newEvent("k5")) // while stopped

	e.reopen()

	if _, err := e.b.Topic(ctxT(t), "durable"); err != nil {
		t.Fatalf("topic after reopen: %v", err)
	}
	for seq := uint64(1); seq <= 5; seq++ {
		ev, _, err := e.b.Event(ctxT(t), "durable", seq)
		if err != nil || ev.ID != fmt.Sprintf("k%d", seq) {
			t.Fatalf("event %d after reopen = %v, %v", seq, ev, err)
		}
	}
	if r := publish(t, e.b, "durable", newEvent("k1"))[0]; !r.Duplicate || r.Sequence != 1 {
		t.Errorf("republishing k1 after reopen = %+v, want a duplicate of sequence 1", r)
	}
	r2 := &recorder{}
	consume(t, e.b, s, r2)
	waitFor(t, 10*time.Second, "the two events published while stopped", func() bool { return len(r2.ids()) == 2 })
	publish(t, e.b, "durable", newEvent("k6"))
	waitFor(t, 10*time.Second, "k6", func() bool { return r2.count("k6") == 1 })
	got := r2.ids()
	if len(got) != 3 || got["k4"] != 1 || got["k5"] != 1 {
		t.Errorf("after reopen the consumer got %v, want k4 k5 k6 once each", got)
	}
}

const crashEnv = "CROSSDOCK_NATS_CRASH_DIR"

// TestCrashRecovery kills a process running the embedded broker with
// SIGKILL and checks that a new one on the same data directory has every
// acknowledged event and delivers what the consumer had not acked.
func TestCrashRecovery(t *testing.T) {
	if dir := os.Getenv(crashEnv); dir != "" {
		crashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashRecovery$", "-test.v")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "CRASH-READY") {
				ready <- true
				break
			}
		}
		ready <- false
		for sc.Scan() {
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatal("child ended without getting ready")
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("child did not get ready")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	b := MustOpen(t, cdnats.Config{DataDir: dir})
	for seq := uint64(1); seq <= 10; seq++ {
		ev, _, err := b.Event(ctxT(t), "crash", seq)
		if err != nil || ev.ID != fmt.Sprintf("c%d", seq) {
			t.Fatalf("event %d after kill -9 = %v, %v", seq, ev, err)
		}
	}
	r := &recorder{}
	consume(t, b, sub("survivor", "crash"), r)
	waitFor(t, 20*time.Second, "the six unacked events", func() bool {
		got := r.ids()
		for i := 5; i <= 10; i++ {
			if got[fmt.Sprintf("c%d", i)] == 0 {
				return false
			}
		}
		return true
	})
	for i := 1; i <= 4; i++ {
		if n := r.count(fmt.Sprintf("c%d", i)); n > 0 {
			// Allowed (at least once): the consumer's acks reach disk
			// about every 100 ms.
			t.Logf("c%d was acked before the crash and delivered again", i)
		}
	}
}

// crashChild publishes ten events, acks the first four through a consumer,
// says it is ready and waits to be killed.
func crashChild(dir string) {
	ctx := context.Background()
	b, err := cdnats.Open(ctx, cdnats.Config{DataDir: dir})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	must := func(err error) {
		if err != nil {
			fmt.Println("crash child:", err)
			os.Exit(1)
		}
	}
	must(b.EnsureTopic(ctx, crossdock.Topic{Name: "crash"}))
	acked := make(chan string, 10)
	c, err := b.Consume(ctx, sub("survivor", "crash"), func(ctx context.Context, m crossdock.Message) {
		must(m.Ack(ctx))
		acked <- m.Event().ID
	})
	must(err)
	for i := 1; i <= 4; i++ {
		_, err := b.Publish(ctx, "crash", newEvent(fmt.Sprintf("c%d", i)))
		must(err)
	}
	for range 4 {
		<-acked
	}
	must(c.Stop(ctx))
	_, err = b.Publish(ctx, "crash", newEvent("c5"), newEvent("c6"), newEvent("c7")) // one atomic batch
	must(err)
	for i := 8; i <= 10; i++ {
		_, err := b.Publish(ctx, "crash", newEvent(fmt.Sprintf("c%d", i)))
		must(err)
	}
	fmt.Println("CRASH-READY")
	select {}
}
