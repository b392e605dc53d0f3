package sip

import "github.com/prometheus/client_golang/prometheus"

// metrics are the SIP front-end's counters: metadata only, never content.
type metrics struct {
	responses     *prometheus.CounterVec
	messages      *prometheus.CounterVec
	tracesDropped prometheus.Counter
	authFailures  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_sip_responses_total",
			Help: "SIP responses sent, by request method and status class.",
		}, []string{"method", "class"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_sip_messages_total",
			Help: "MESSAGE requests accepted, by outcome: delivered (a device took it), stored, refused.",
		}, []string{"outcome"}),
		tracesDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_sip_traces_dropped_total",
			Help: "SIP traces not written because the store fell behind or failed.",
		}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_sip_auth_failures_total",
			Help: "SIP Digest answers that did not match.",
		}),
	}
	reg.MustRegister(m.responses, m.messages, m.tracesDropped, m.authFailures)
	return m
}
