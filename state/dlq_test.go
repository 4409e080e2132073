package state

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func sampleLetter(id uint64) DLQLetter {
	return DLQLetter{ID: id, Sink: "loki", Reason: "line_too_long", Detail: "entry for stream {a=\"b\"} too long",
		First: 10, Last: 20, CreatedUnixNano: 1e18, UpdatedUnixNano: 1e18 + 5, MinTime: -3, MaxTime: 99,
		Attempts: 2, Lines: 7, Bytes: 1234, File: "00000000000000000001.letter", PartiallyAccepted: true,
		Status: DLQPending, LastError: "http 400"}
}

func TestDLQLettersRoundTripAcrossReopen(t *testing.T) {
	path := testPath(t)
	s := mustOpen(t, path, Options{})
	if ls, corrupt, err := s.DLQLetters(); err != nil || len(ls) != 0 || len(corrupt) != 0 {
		t.Fatalf("empty store: %v %v %v", ls, corrupt, err)
	}
	first, err := s.ReserveDLQIDs(3)
	if err != nil || first != 1 {
		t.Fatalf("ReserveDLQIDs = %d, %v; want 1", first, err)
	}
	a, b := sampleLetter(first), sampleLetter(first+2)
	b.Status, b.PartiallyAccepted, b.Detail = DLQReprocessed, false, ""
	if err := s.PutDLQLetters(b, a); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, path, Options{})
	got, corrupt, err := s.DLQLetters()
	if err != nil || len(corrupt) != 0 {
		t.Fatalf("DLQLetters: %v %v", corrupt, err)
	}
	if !reflect.DeepEqual(got, []DLQLetter{a, b}) {
		t.Fatalf("letters = %+v\nwant %+v", got, []DLQLetter{a, b})
	}
	one, ok, err := s.DLQLetter(a.ID)
	if err != nil || !ok || !reflect.DeepEqual(one, a) {
		t.Fatalf("DLQLetter = %+v %t %v", one, ok, err)
	}
	if _, ok, err := s.DLQLetter(99); ok || err != nil {
		t.Fatalf("DLQLetter(99) = %t %v", ok, err)
	}
	// Ids are never reused, even after the letters are gone.
	if err := s.DeleteDLQLetters(a.ID, b.ID, 12345); err != nil {
		t.Fatal(err)
	}
	if next, err := s.ReserveDLQIDs(1); err != nil || next != 4 {
		t.Fatalf("ReserveDLQIDs after delete = %d, %v; want 4", next, err)
	}
	// A letter put with an id beyond the sequence moves it.
	if err := s.PutDLQLetters(sampleLetter(50)); err != nil {
		t.Fatal(err)
	}
	if next, err := s.ReserveDLQIDs(1); err != nil || next != 51 {
		t.Fatalf("ReserveDLQIDs after id 50 = %d, %v; want 51", next, err)
	}
}

func TestDLQRejectsBadValues(t *testing.T) {
	s := mustOpen(t, testPath(t), Options{})
	long := strings.Repeat("x", MaxDLQStringBytes+1)
	tests := map[string]func() error{
		"zero id":           func() error { return s.PutDLQLetters(sampleLetter(0)) },
		"long detail":       func() error { l := sampleLetter(1); l.Detail = long; return s.PutDLQLetters(l) },
		"negative lines":    func() error { l := sampleLetter(1); l.Lines = -1; return s.PutDLQLetters(l) },
		"reserve zero":      func() error { _, err := s.ReserveDLQIDs(0); return err },
		"empty request id":  func() error { return s.PutDLQRequest(DLQRequest{Status: DLQRequestDone}) },
		"result too large":  func() error { return s.PutDLQRequest(DLQRequest{ID: "r", Result: make([]byte, MaxDLQResultBytes+1)}) },
		"one bad, none put": func() error { bad := sampleLetter(2); bad.Sink = long; return s.PutDLQLetters(sampleLetter(1), bad) },
	}
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) {
			if err := fn(); !errors.Is(err, ErrDLQValue) {
				t.Fatalf("err = %v, want ErrDLQValue", err)
			}
		})
	}
	if ls, _, _ := s.DLQLetters(); len(ls) != 0 {
		t.Fatalf("a rejected batch stored %d letters", len(ls))
	}
}

func TestDLQCorruptLetterReportedAndDeleted(t *testing.T) {
	path := testPath(t)
	s := mustOpen(t, path, Options{})
	if err := s.PutDLQLetters(sampleLetter(1), sampleLetter(2)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketDLQ)).Bucket([]byte(bucketDLQLetters))
		if err := b.Put(dlqKey(2), []byte{dlqLetterFormatV1, 9}); err != nil {
			return err
		}
		return b.Put([]byte("short"), []byte{1})
	})
	s = mustOpen(t, path, Options{})
	ls, corrupt, err := s.DLQLetters()
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 1 || ls[0].ID != 1 || len(corrupt) != 2 {
		t.Fatalf("letters %+v corrupt %v", ls, corrupt)
	}
	for _, ce := range corrupt {
		if !errors.Is(ce, ErrCorrupt) {
			t.Errorf("%v does not wrap ErrCorrupt", ce)
		}
	}
	if _, _, err := s.DLQLetter(2); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("DLQLetter(2) err = %v, want ErrCorrupt", err)
	}
	if n, err := s.DeleteCorruptDLQLetters(); err != nil || n != 2 {
		t.Fatalf("DeleteCorruptDLQLetters = %d, %v; want 2", n, err)
	}
	if ls, corrupt, _ := s.DLQLetters(); len(ls) != 1 || len(corrupt) != 0 {
		t.Fatalf("after delete: %v %v", ls, corrupt)
	}
}

func TestDLQRequests(t *testing.T) {
	path := testPath(t)
	s := mustOpen(t, path, Options{})
	if _, ok, err := s.DLQRequest("none"); ok || err != nil {
		t.Fatalf("missing request: %t %v", ok, err)
	}
	reqs := []DLQRequest{
		{ID: "old", Status: DLQRequestDone, CreatedUnixNano: 1, ExpiresUnixNano: 100, Result: []byte(`{"a":1}`)},
		{ID: "new", Status: DLQRequestRunning, CreatedUnixNano: 2, ExpiresUnixNano: 300},
	}
	for _, r := range reqs {
		if err := s.PutDLQRequest(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, path, Options{})
	for _, want := range reqs {
		got, ok, err := s.DLQRequest(want.ID)
		if err != nil || !ok || !reflect.DeepEqual(got, want) {
			t.Fatalf("DLQRequest(%s) = %+v %t %v, want %+v", want.ID, got, ok, err, want)
		}
	}
}

func TestDLQRequestExpiry(t *testing.T) {
	path := testPath(t)
	s := mustOpen(t, path, Options{})
	for _, r := range []DLQRequest{
		{ID: "a", Status: DLQRequestDone, ExpiresUnixNano: 100},
		{ID: "b", Status: DLQRequestDone, ExpiresUnixNano: 200},
		{ID: "c", Status: DLQRequestRunning, ExpiresUnixNano: 300},
	} {
		if err := s.PutDLQRequest(r); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.DeleteExpiredDLQRequests(200); err != nil || n != 2 {
		t.Fatalf("DeleteExpiredDLQRequests = %d, %v; want 2", n, err)
	}
	if _, ok, _ := s.DLQRequest("c"); !ok {
		t.Fatal("request c expired early")
	}
	if _, ok, _ := s.DLQRequest("b"); ok {
		t.Fatal("request b kept past its expiry")
	}
}

func TestDLQClosedStore(t *testing.T) {
	s := mustOpen(t, testPath(t), Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.PutDLQLetters(sampleLetter(1)); !errors.Is(err, ErrClosed) {
		t.Errorf("PutDLQLetters after Close = %v", err)
	}
	if _, err := s.ReserveDLQIDs(1); !errors.Is(err, ErrClosed) {
		t.Errorf("ReserveDLQIDs after Close = %v", err)
	}
	if _, _, err := s.DLQLetters(); !errors.Is(err, ErrClosed) {
		t.Errorf("DLQLetters after Close = %v", err)
	}
	if _, _, err := s.DLQRequest("x"); !errors.Is(err, ErrClosed) {
		t.Errorf("DLQRequest after Close = %v", err)
	}
}

func FuzzDecodeDLQLetter(f *testing.F) {
	good, _ := appendDLQLetter(nil, sampleLetter(1))
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{dlqLetterFormatV1, 1, 0})
	f.Add(append(good, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := decodeDLQLetter(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		// What decodes must survive a round trip (varints need not be
		// minimal, so the bytes may differ).
		again, err := appendDLQLetter(nil, l)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if l2, err := decodeDLQLetter(again); err != nil || !reflect.DeepEqual(l, l2) {
			t.Fatalf("round trip: %+v -> %+v, %v", l, l2, err)
		}
	})
}

func FuzzDecodeDLQRequest(f *testing.F) {
	f.Add(appendDLQRequest(nil, DLQRequest{Status: DLQRequestDone, CreatedUnixNano: 5, ExpiresUnixNano: -9, Result: []byte("{}")}))
	f.Add([]byte{dlqRequestFormatV1})
	f.Add([]byte{dlqRequestFormatV1, 2, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		q, err := decodeDLQRequest(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if q2, err := decodeDLQRequest(appendDLQRequest(nil, q)); err != nil || !reflect.DeepEqual(q, q2) {
			t.Fatalf("round trip: %+v -> %+v, %v", q, q2, err)
		}
	})
}
