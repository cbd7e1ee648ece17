package dataverse_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/dataverse"
)

// sample reads a payload from testdata.
func sample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// webhookHeader is what Dataverse sends with a webhook request, plus the
// name/value pairs given.
func webhookHeader(entity, message string, kv ...string) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(dataverse.HeaderOrganization, "contoso.crm4.dynamics.com")
	h.Set(dataverse.HeaderEntityName, entity)
	h.Set(dataverse.HeaderRequestName, message)
	h.Set(dataverse.HeaderCorrelationID, "11111111-2222-4333-8444-555555555555")
	h.Set(dataverse.HeaderRequestID, "99999999-8888-4777-8666-555555555555")
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// jsonEqual reports whether two JSON texts hold the same value, numbers
// compared by their text.
func jsonEqual(t testing.TB, got []byte, want string) bool {
	t.Helper()
	decode := func(b []byte) any {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		return v
	}
	return reflect.DeepEqual(decode(got), decode([]byte(want)))
}

const (
	accountID = "0b9f3e2d-8d21-ee11-9cbe-000d3a4c6a1f"
	contactID = "e7f1a2b3-8c21-ee11-9cbe-000d3a4c6a1f"
	emailID   = "3f4e5d6c-8d21-ee11-9cbe-000d3a4c6a1f"
	userID    = "c1a2b3d4-7e21-ee11-9cbe-000d3a4c6a1f"
)

func TestMapSamples(t *testing.T) {
	tests := []struct {
		name   string
		body   []byte
		header http.Header

		id, typ, subject, correlation string
		time                          time.Time
		data                          string
	}{
		{
			name: "create with several attribute types", body: sample(t, "create-account.json"),
			header: webhookHeader("account", "Create"),
			id:     "4c8e2a10-8d21-ee11-9cbe-000d3a4c6a1f", typ: "dataverse.account.create", subject: accountID,
			correlation: "9d2f6c1e-3b4a-4f7e-a1c2-5e8d7b6a4c3f",
			time:        time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC),
			data: `{"name":"Contoso Pharmaceuticals","accountnumber":"ACC-10042",
				"primarycontactid":{"id":"` + contactID + `","logicalName":"contact"},
				"industrycode":1,"revenue":1000.50,"numberofemployees":250,"donotemail":false,
				"accountid":"` + accountID + `","createdon":"2023-11-14T22:13:18Z","description":null,
				"messageName":"Create","entityName":"account","userId":"` + userID + `","organizationName":"org7f0e1d2c"}`,
		},
		{
			name: "update with images, a multi-select and a zone offset", body: sample(t, "update-account.json"),
			header: webhookHeader("account", "Update"),
			id:     "5d9f3b21-8d21-ee11-9cbe-000d3a4c6a1f", typ: "dataverse.account.update", subject: accountID,
			correlation: "2a7b9c1d-6e5f-4a3b-8c2d-1e0f9a8b7c6d",
			// The milliseconds are UTC; +0100 only names the sender's zone.
			time: time.Date(2023, 11, 15, 0, 13, 21, 0, time.UTC),
			data: `{"name":"Contoso <Pharma> & Co","accountid":"` + accountID + `","statuscode":2,
				"creditlimit":25000.0000,"new_riskscore":0.1234567890123456789,"new_regions":[100000000,100000002],
				"parentaccountid":{"id":"1c2d3e4f-8d21-ee11-9cbe-000d3a4c6a1f","logicalName":"account"},
				"creditonhold":true,"lastonholdtime":"2023-11-14T23:13:20Z","modifiedon":"2023-11-15T00:13:20Z",
				"modifiedby":{"id":"` + userID + `","logicalName":"systemuser"},"telephone2":null,
				"inputParameters":{"SuppressDuplicateDetection":false},
				"preImages":{"PreImage":{"name":"Contoso Pharmaceuticals","statuscode":1}},
				"postImages":{"PostImage":{"name":"Contoso <Pharma> & Co","accountnumber":"ACC-10042","statuscode":2}},
				"messageName":"Update","entityName":"account","userId":"` + userID + `","organizationName":"org7f0e1d2c"}`,
		},
		{
			name: "delete: an EntityReference target and no OperationId", body: sample(t, "delete-contact.json"),
			header: webhookHeader("contact", "Delete"),
			id:     "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d", typ: "dataverse.contact.delete", subject: contactID,
			correlation: "6f5e4d3c-2b1a-4098-8765-43210fedcba9",
			time:        time.Date(2023, 11, 15, 1, 0, 0, 0, time.UTC),
			data: `{"id":"` + contactID + `","logicalName":"contact",
				"preImages":{"PreImage":{"fullname":"Nancy Anderson","emailaddress1":"nancy@contoso.example",
					"parentcustomerid":{"id":"` + accountID + `","logicalName":"account"}}},
				"messageName":"Delete","entityName":"contact","userId":"` + userID + `","organizationName":"org7f0e1d2c"}`,
		},
		{
			name: "create with an activity party collection", body: sample(t, "create-email.json"),
			header: webhookHeader("email", "Create"),
			id:     "7a8b9c0d-8d21-ee11-9cbe-000d3a4c6a1f", typ: "dataverse.email.create", subject: emailID,
			correlation: "1f2e3d4c-5b6a-4789-8a9b-0c1d2e3f4a5b",
			time:        time.Date(2023, 11, 15, 3, 46, 40, 0, time.UTC),
			data: `{"subject":"Quote for 40 licences",
				"to":[{"partyid":{"id":"` + contactID + `","logicalName":"contact"},"participationtypemask":2}],
				"scheduledend":"2023-11-16T04:46:40Z","activityid":"` + emailID + `",
				"messageName":"Create","entityName":"email","userId":"` + userID + `","organizationName":"org7f0e1d2c"}`,
		},
		{
			name: "size exceeded: the ids and the flag", body: sample(t, "size-exceeded-email.json"),
			header: webhookHeader("email", "Create", dataverse.HeaderSizeExceeded, "true"),
			id:     "7a8b9c0d-8d21-ee11-9cbe-000d3a4c6a1f", typ: "dataverse.email.create", subject: emailID,
			correlation: "0e1d2c3b-4a59-4687-a5b4-c3d2e1f0a9b8",
			time:        time.Date(2023, 11, 15, 3, 46, 40, 0, time.UTC),
			data: `{"id":"` + emailID + `","sizeExceeded":true,
				"messageName":"Create","entityName":"email","userId":"` + userID + `","organizationName":"org7f0e1d2c"}`,
		},
		{
			name:   "size exceeded: a body cut short keeps the fields before the cut",
			body:   cutAfter(t, sample(t, "size-exceeded-email.json"), `"PrimaryEntityName": "email",`),
			header: webhookHeader("email", "Create", dataverse.HeaderSizeExceeded, "true"),
			id:     "7a8b9c0d-8d21-ee11-9cbe-000d3a4c6a1f", typ: "dataverse.email.create", subject: emailID,
			correlation: "0e1d2c3b-4a59-4687-a5b4-c3d2e1f0a9b8",
			time:        time.Date(2023, 11, 15, 3, 46, 40, 0, time.UTC),
			data: `{"id":"` + emailID + `","sizeExceeded":true,
				"messageName":"Create","entityName":"email","userId":"","organizationName":"org7f0e1d2c"}`,
		},
		{
			name:   "size exceeded: no body, the headers alone",
			header: webhookHeader("email", "Create", dataverse.HeaderSizeExceeded, ""),
			id:     "99999999-8888-4777-8666-555555555555", typ: "dataverse.email.create",
			correlation: "11111111-2222-4333-8444-555555555555",
			data: `{"sizeExceeded":true,"messageName":"Create","entityName":"email","userId":"",
				"organizationName":"contoso.crm4.dynamics.com"}`,
		},
		{
			name:   "the headers stand in for missing names",
			body:   []byte(`{"OperationId":"a1","PrimaryEntityId":"b2","OrganizationName":"org1","CorrelationId":null}`),
			header: webhookHeader("lead", "Qualify"),
			id:     "a1", typ: "dataverse.lead.qualify", subject: "b2", correlation: "11111111-2222-4333-8444-555555555555",
			data: `{"messageName":"Qualify","entityName":"lead","userId":"","organizationName":"org1"}`,
		},
		{
			name: "a custom action's name is lower-cased in the type, kept in data",
			body: []byte(`{"OperationId":"a1","MessageName":"new_ApproveOrder","PrimaryEntityName":"salesorder",
				"OrganizationName":"org1","InputParameters":[{"key":"Target","value":{"__type":"EntityReference:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts",
				"Id":"c3","LogicalName":"salesorder","Name":null}},{"key":"Comment","value":"ok"}]}`),
			header: http.Header{},
			id:     "a1", typ: "dataverse.salesorder.new_approveorder", subject: "c3", correlation: "a1",
			data: `{"id":"c3","logicalName":"salesorder","inputParameters":{"Comment":"ok"},
				"messageName":"new_ApproveOrder","entityName":"salesorder","userId":"","organizationName":"org1"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := dataverse.Map(tt.body, tt.header)
			if err != nil {
				t.Fatalf("Map: %v", err)
			}
			if err := ev.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
			if ev.ID != tt.id || ev.Type != tt.typ || ev.Subject != tt.subject || ev.CorrelationID() != tt.correlation {
				t.Errorf("id, type, subject, correlationid = %q %q %q %q\nwant %q %q %q %q",
					ev.ID, ev.Type, ev.Subject, ev.CorrelationID(), tt.id, tt.typ, tt.subject, tt.correlation)
			}
			if !ev.Time.Equal(tt.time) {
				t.Errorf("time = %v, want %v", ev.Time, tt.time)
			}
			if ev.SpecVersion != "1.0" || ev.DataContentType != "application/json" || !strings.HasPrefix(ev.Source, "dataverse://") {
				t.Errorf("specversion, datacontenttype, source = %q %q %q", ev.SpecVersion, ev.DataContentType, ev.Source)
			}
			if !jsonEqual(t, ev.Data, tt.data) {
				t.Errorf("data = %s\nwant   %s", ev.Data, tt.data)
			}
		})
	}
}

// cutAfter returns b up to and including the first occurrence of mark.
func cutAfter(t testing.TB, b []byte, mark string) []byte {
	t.Helper()
	i := bytes.Index(b, []byte(mark))
	if i < 0 {
		t.Fatalf("%q is not in the sample", mark)
	}
	return b[:i+len(mark)]
}

func TestMapSource(t *testing.T) {
	ev, err := dataverse.Map(sample(t, "create-account.json"), webhookHeader("account", "Create"))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Source != "dataverse://org7f0e1d2c" {
		t.Errorf("source = %q, want dataverse://org7f0e1d2c", ev.Source)
	}
	// Without OrganizationName in the body the header names the organization.
	ev, err = dataverse.Map([]byte(`{"OperationId":"a","MessageName":"Create","PrimaryEntityName":"account"}`),
		http.Header{"X-Ms-Dynamics-Organization": {"contoso.crm4.dynamics.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Source != "dataverse://contoso.crm4.dynamics.com" {
		t.Errorf("source = %q", ev.Source)
	}
	// The name is escaped into a URI.
	ev, err = dataverse.Map([]byte(`{"OperationId":"a","MessageName":"Create","PrimaryEntityName":"account","OrganizationName":"my org/x"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Source != "dataverse://my%20org%2Fx" {
		t.Errorf("source = %q", ev.Source)
	}
}

// target wraps one attribute value in a minimal Create context.
func target(value string) []byte {
	return []byte(`{"OperationId":"op","MessageName":"Create","PrimaryEntityName":"account","OrganizationName":"org",
		"InputParameters":[{"key":"Target","value":{"__type":"Entity:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts",
		"Attributes":[{"key":"x","value":` + value + `}],"LogicalName":"account","Id":"00000000-0000-0000-0000-000000000000"}}]}`)
}

func TestMapValues(t *testing.T) {
	const ns = `:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts`
	tests := []struct {
		name, value, want string
	}{
		{"string", `"Contoso"`, `"Contoso"`},
		{"null", `null`, `null`},
		{"integer", `42`, `42`},
		{"decimal keeps its digits", `12345678901234567890.123456789`, `12345678901234567890.123456789`},
		{"boolean", `true`, `true`},
		{"guid", `"6d81597f-0f9f-e711-8122-000d3aa2331c"`, `"6d81597f-0f9f-e711-8122-000d3aa2331c"`},
		{"EntityReference", `{"__type":"EntityReference` + ns + `","Id":"r1","KeyAttributes":[],"LogicalName":"contact","Name":"N","RowVersion":null}`, `{"id":"r1","logicalName":"contact"}`},
		{"EntityReference without __type", `{"Id":"r1","LogicalName":"contact","Name":null}`, `{"id":"r1","logicalName":"contact"}`},
		{"OptionSetValue", `{"__type":"OptionSetValue` + ns + `","Value":100000001}`, `100000001`},
		{"Money", `{"__type":"Money` + ns + `","Value":19.9900}`, `19.9900`},
		{"OptionSetValueCollection", `[{"__type":"OptionSetValue` + ns + `","Value":1},{"__type":"OptionSetValue` + ns + `","Value":3}]`, `[1,3]`},
		{"BooleanManagedProperty", `{"__type":"BooleanManagedProperty` + ns + `","CanBeChanged":true,"ManagedPropertyLogicalName":"iscustomizableanddeletable","Value":false}`, `false`},
		{"AliasedValue", `{"__type":"AliasedValue` + ns + `","AttributeLogicalName":"revenue","EntityLogicalName":"account","NeedFormatting":true,"ReturnedValue":{"__type":"Money` + ns + `","Value":5}}`, `5`},
		{"EntityCollection", `{"__type":"EntityCollection` + ns + `","Entities":[{"Attributes":[{"key":"partyid","value":{"__type":"EntityReference` + ns + `","Id":"p1","LogicalName":"account"}}],"Id":"a1","LogicalName":"activityparty"}],"EntityName":"activityparty","MoreRecords":false}`, `[{"partyid":{"id":"p1","logicalName":"account"}}]`},
		{"EntityReferenceCollection", `[{"__type":"EntityReference` + ns + `","Id":"r1","LogicalName":"contact"},{"__type":"EntityReference` + ns + `","Id":"r2","LogicalName":"lead"}]`, `[{"id":"r1","logicalName":"contact"},{"id":"r2","logicalName":"lead"}]`},
		{"nested Entity", `{"__type":"Entity` + ns + `","Attributes":[{"key":"name","value":"n"}],"Id":"e1","LogicalName":"account"}`, `{"name":"n"}`},
		{"unknown type keeps its fields", `{"__type":"Relationship` + ns + `","PrimaryEntityRole":null,"SchemaName":"contact_customer_accounts"}`, `{"PrimaryEntityRole":null,"SchemaName":"contact_customer_accounts"}`},
		{"DateTime", `"\/Date(1506384247000)\/"`, `"2017-09-26T00:04:07Z"`},
		{"DateTime with offset", `"\/Date(1506384247123-0700)\/"`, `"2017-09-26T00:04:07.123Z"`},
		{"DateTime before 1970", `"\/Date(-86400000+0000)\/"`, `"1969-12-31T00:00:00Z"`},
		{"DateTime.MinValue", `"\/Date(-62135596800000)\/"`, `"0001-01-01T00:00:00Z"`},
		{"a date past 9999 stays a string", `"\/Date(253402300800000)\/"`, `"/Date(253402300800000)/"`},
		{"a malformed date stays a string", `"\/Date(12x)\/"`, `"/Date(12x)/"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := dataverse.Map(target(tt.value), nil)
			if err != nil {
				t.Fatalf("Map: %v", err)
			}
			var data map[string]json.RawMessage
			if err := json.Unmarshal(ev.Data, &data); err != nil {
				t.Fatal(err)
			}
			if !jsonEqual(t, data["x"], tt.want) {
				t.Errorf("x = %s, want %s", data["x"], tt.want)
			}
			if ev.Subject != "" {
				t.Errorf("subject = %q, want none: every id is empty", ev.Subject)
			}
		})
	}
}

func TestMapErrors(t *testing.T) {
	valid := `"OperationId":"op","MessageName":"Create","PrimaryEntityName":"account","OrganizationName":"org"`
	tests := []struct {
		name, body string
		header     http.Header
		detail     string
	}{
		{"empty body", ``, nil, "the body is empty"},
		{"not an object", `[1]`, nil, "not a JSON object"},
		{"malformed JSON", `{"OperationId":`, nil, "not a Dataverse RemoteExecutionContext"},
		{"cut short without the size header", `{` + valid + `,"InputParameters":[`, nil, "not a Dataverse RemoteExecutionContext"},
		{"data after the object", `{` + valid + `} {}`, nil, "more data after the JSON object"},
		{"no MessageName", `{"OperationId":"op","PrimaryEntityName":"account","OrganizationName":"org"}`, nil, "MessageName is missing and there is no x-ms-dynamics-request-name header"},
		{"no PrimaryEntityName", `{"OperationId":"op","MessageName":"Create","OrganizationName":"org"}`, nil, "PrimaryEntityName is missing"},
		{"no OrganizationName", `{"OperationId":"op","MessageName":"Create","PrimaryEntityName":"account"}`, nil, "OrganizationName is missing"},
		{"no id", `{"MessageName":"Create","PrimaryEntityName":"account","OrganizationName":"org","OperationId":"00000000-0000-0000-0000-000000000000","RequestId":null}`, nil, "OperationId and RequestId are missing or empty"},
		{"a control character in the id", `{"MessageName":"Create","PrimaryEntityName":"account","OrganizationName":"org","OperationId":"a\r\nb"}`, nil, "control characters"},
		{"MessageName not a string", `{"OperationId":"op","MessageName":5}`, nil, "MessageName must be a string"},
		{"InputParameters not pairs", `{` + valid + `,"InputParameters":{"Target":1}}`, nil, "InputParameters must be a list of {key, value} pairs"},
		{"Target attributes not pairs", `{` + valid + `,"InputParameters":[{"key":"Target","value":{"__type":"Entity:x","Attributes":{"name":"n"}}}]}`, nil, "Attributes must be a list of {key, value} pairs"},
		{"OperationCreatedOn not a /Date()/", `{` + valid + `,"OperationCreatedOn":"2023-11-14T22:13:20Z"}`, nil, `OperationCreatedOn "2023-11-14T22:13:20Z" is not a /Date(milliseconds±hhmm)/ timestamp`},
		{"OperationCreatedOn out of range", `{` + valid + `,"OperationCreatedOn":"\/Date(999999999999999)\/"}`, nil, "OperationCreatedOn"},
		{"OperationCreatedOn with a bad zone", `{` + valid + `,"OperationCreatedOn":"\/Date(0+2500)\/"}`, nil, "OperationCreatedOn"},
		{"size header false is no size header", `{` + valid + `,`, http.Header{"X-Ms-Dynamics-Msg-Size-Exceeded": {"false"}}, "not a Dataverse RemoteExecutionContext"},
		{"size exceeded but nothing to go on", `garbage`, http.Header{"X-Ms-Dynamics-Msg-Size-Exceeded": {"true"}}, "PrimaryEntityName is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := dataverse.Map([]byte(tt.body), tt.header)
			if err == nil {
				t.Fatalf("Map = %+v, want an error", ev)
			}
			if crossdock.ErrorCode(err) != crossdock.EINVALID || !strings.Contains(err.Error(), tt.detail) {
				t.Errorf("error = %v (%s), want EINVALID containing %q", err, crossdock.ErrorCode(err), tt.detail)
			}
		})
	}
}

func TestMapRepeatedKeys(t *testing.T) {
	// A key given twice keeps its last value, as .NET would read it.
	body := `{"OperationId":"first","OperationId":"second","MessageName":"Create","PrimaryEntityName":"account","OrganizationName":"org",
		"InputParameters":[{"key":"Target","value":{"__type":"Entity:x","Attributes":[{"key":"name","value":"a"},{"key":"name","value":"b"}]}}]}`
	ev, err := dataverse.Map([]byte(body), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != "second" || !jsonEqual(t, ev.Data, `{"name":"b","messageName":"Create","entityName":"account","userId":"","organizationName":"org"}`) {
		t.Errorf("event = %s %s", ev.ID, ev.Data)
	}
}

func TestParseDate(t *testing.T) {
	tests := []struct {
		in   string
		want string // RFC 3339, "" when refused
	}{
		{"/Date(0)/", "1970-01-01T00:00:00Z"},
		{"/Date(1700000000000)/", "2023-11-14T22:13:20Z"},
		{"/Date(1700000000000+0000)/", "2023-11-14T22:13:20Z"},
		{"/Date(1700000000000+0530)/", "2023-11-14T22:13:20Z"},
		{"/Date(1700000000000-1200)/", "2023-11-14T22:13:20Z"},
		{"/Date(-1)/", "1969-12-31T23:59:59.999Z"},
		{"/Date(253402300799999)/", "9999-12-31T23:59:59.999Z"},
		{"/Date(253402300800000)/", ""},
		{"/Date(-62135596800001)/", ""},
		{"/Date()/", ""},
		{"/Date(-)/", ""},
		{"/Date(+5)/", ""},
		{"/Date(5+)/", ""},
		{"/Date(5+000)/", ""},
		{"/Date(5+00000)/", ""},
		{"/Date(5+2400)/", ""},
		{"/Date(5+0060)/", ""},
		{"/Date(1700000000000)", ""},
		{"Date(1700000000000)/", ""},
		{"/Date(9999999999999999999999)/", ""},
		{"2023-11-14T22:13:20Z", ""},
	}
	for _, tt := range tests {
		got, ok := dataverse.ParseDate(tt.in)
		s := ""
		if ok {
			s = got.Format(time.RFC3339Nano)
			if got.Location() != time.UTC {
				t.Errorf("ParseDate(%q) is in %v, want UTC", tt.in, got.Location())
			}
		}
		if s != tt.want {
			t.Errorf("ParseDate(%q) = %q, want %q", tt.in, s, tt.want)
		}
	}
}

func TestIngress(t *testing.T) {
	in := dataverse.Ingress{Topic: "crm.account.changed", Key: "s3cret-key"}
	if err := in.Validate(); err != nil {
		t.Errorf("Validate = %v", err)
	}
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("configured", "ingress", in)
	for _, s := range []string{in.String(), fmt.Sprint(in), fmt.Sprintf("%v", in), logs.String()} {
		if strings.Contains(s, "s3cret") || !strings.Contains(s, "crm.account.changed") {
			t.Errorf("%q shows the key or hides the topic", s)
		}
	}
	for _, bad := range []dataverse.Ingress{{Topic: "CRM", Key: "k"}, {Topic: "crm.account", Key: ""}} {
		err := bad.Validate()
		if crossdock.ErrorCode(err) != crossdock.EINVALID {
			t.Errorf("Validate(%v) = %v, want EINVALID", bad, err)
		}
	}
}

func BenchmarkMap(b *testing.B) {
	body := sample(b, "update-account.json")
	h := webhookHeader("account", "Update")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dataverse.Map(body, h); err != nil {
			b.Fatal(err)
		}
	}
}
