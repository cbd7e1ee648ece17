package main_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDataverseIngressAndSecretRotation runs the built binary with a
// Dataverse ingress key and a destination header value from a secrets
// directory, and rotates both files while the hub runs.
func TestDataverseIngressAndSecretRotation(t *testing.T) {
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	if err := os.MkdirAll(secrets, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secrets, "erp-key"), []byte("key-one-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var keys []string
	var paths []string
	erp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keys = append(keys, r.Header.Get("X-Api-Key"))
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer erp.Close()
	seen := func() ([]string, []string) {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), keys...), append([]string(nil), paths...)
	}

	cfg := writeConfig(t, dir, fmt.Sprintf(`
topics:
  - name: crm.account.changed
subscriptions:
  - name: erp-accounts
    topic: crm.account.changed
    transform: '{name: .data.name}'
    destination:
      url: %q
      method: PUT
      headers: {X-Api-Key: "${secret:erp-key}"}
ingress:
  dataverse:
    - topic: crm.account.changed
      key: "${secret:dataverse-key}"
`, erp.URL+"/customers/{{subject}}"))
	if err := os.WriteFile(filepath.Join(secrets, "dataverse-key"), []byte("dv-key-456\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startHub(t, "--config", cfg, "--data", filepath.Join(dir, "data"), "--secrets-dir", secrets)

	body, err := os.ReadFile(filepath.Join("..", "..", "dataverse", "testdata", "update-account.json"))
	if err != nil {
		t.Fatal(err)
	}
	post := func(query, id string) int {
		b := strings.Replace(string(body), "5d9f3b21-8d21-ee11-9cbe-000d3a4c6a1f", id, 1)
		resp, err := http.Post(h.url+"/v1/ingress/dataverse/crm.account.changed"+query, "application/json", strings.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("?code=wrong", "op-0"); code != http.StatusUnauthorized {
		t.Fatalf("wrong key answered %d", code)
	}
	if code := post("?code=dv-key-456", "op-1"); code != http.StatusAccepted {
		t.Fatalf("Dataverse webhook answered %d", code)
	}
	waitUntil(t, 15*time.Second, "the first delivery", func() bool { k, _ := seen(); return len(k) == 1 })
	k, p := seen()
	if k[0] != "key-one-123" || p[0] != "/customers/0b9f3e2d-8d21-ee11-9cbe-000d3a4c6a1f" {
		t.Fatalf("first delivery: key %q path %q", k[0], p[0])
	}

	// Rotate the key file; the hub picks the new value up without a restart.
	if err := os.WriteFile(filepath.Join(secrets, "erp-key"), []byte("key-two-789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for n := 2; ; n++ {
		if code := post("?code=dv-key-456", fmt.Sprintf("op-%d", n)); code != http.StatusAccepted {
			t.Fatalf("Dataverse webhook answered %d", code)
		}
		waitUntil(t, 15*time.Second, "a delivery", func() bool { k, _ := seen(); return len(k) == n })
		if k, _ := seen(); k[n-1] == "key-two-789" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the rotated secret never reached a delivery")
		}
	}
	// A rotated ingress key takes effect at once: the old one is refused.
	if err := os.WriteFile(filepath.Join(secrets, "dataverse-key"), []byte("dv-key-new\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := post("?code=dv-key-456", "op-old"); code != http.StatusUnauthorized {
		t.Fatalf("the old Dataverse key answered %d after rotation", code)
	}
	if code := post("?code=dv-key-new", "op-new"); code != http.StatusAccepted {
		t.Fatalf("the new Dataverse key answered %d", code)
	}
	if strings.Contains(h.stderr.String(), "key-one-123") || strings.Contains(h.stderr.String(), "dv-key-456") {
		t.Fatalf("a secret value reached the log:\n%s", h.stderr)
	}
}
