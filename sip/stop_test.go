package sip_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/internal/app/apptest"
)

// TestStopUnderLoad stops a node while requests keep arriving: the ones
// that sipgo still hands over during the stop are neither answered nor
// traced into a closed queue, and nothing panics.
func TestStopUnderLoad(t *testing.T) {
	e := start(t, apptest.Engines[0], nil)
	c, err := net.Dial("udp", e.srv.Node.Addr("sip-udp").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			fmt.Fprintf(c, "OPTIONS sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-%d\r\n"+
				"From: <sip:a@example.com>;tag=1\r\nTo: <sip:example.com>\r\nCall-ID: %d@x\r\nCSeq: 1 OPTIONS\r\n"+
				"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n", i, i)
		}
	})
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.Node.Stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}
	close(stop)
	wg.Wait()
}
