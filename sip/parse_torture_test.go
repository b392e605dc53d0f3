package sip

import (
	"crypto/sha256"
	"encoding/hex"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	sipmsg "github.com/emiago/sipgo/sip"
)

// rfc4475Messages lists the files of testdata/rfc4475: the messages of
// RFC 4475 §3.1.1 (valid) and §3.1.2 (invalid), taken from the RFC's
// Appendix A archive, with the SHA-256 of each so that a line-end
// conversion cannot slip in unnoticed.
var rfc4475Messages = []struct {
	name, section string
	valid         bool
	sha256        string
}{
	{"wsinv", "3.1.1.1", true, "d6f6cdee99cd0a1f8e3d9a0fdd67c877700e19ab86d8186dada06f61260e3e61"},
	{"intmeth", "3.1.1.2", true, "b957a8292c1c0a9851fe94705b90f94320738f43aacde64998e401f742ef688d"},
	{"esc01", "3.1.1.3", true, "be3a316d4ce5f69cad474646191e390dd4b50fc8371e44b5197fe1237781973e"},
	{"escnull", "3.1.1.4", true, "263fe2ecd12a5ccbb6c67b3174e9211d11da9b600e7d69666a86d2ee42873e90"},
	{"esc02", "3.1.1.5", true, "9a9c59449f00327b02071feafc8e5c2a261c98c818044167894cc17809a12199"},
	{"lwsdisp", "3.1.1.6", true, "d1b36b6316c12824f6f04bf6b1fd1f021cade9b74871693b9c3474cd9fa7f4e6"},
	{"longreq", "3.1.1.7", true, "185739292bc676760e5b1cca77c87705aa570240171c506ad76f8c35af0ecdaa"},
	{"dblreq", "3.1.1.8", true, "a6be48426565c2a705389c4ce2ea17e57b891cb13f80490a2cb9392c797b46ef"},
	{"semiuri", "3.1.1.9", true, "87bbaed6b4b354dbd3c5c7a20e66686303c63e43a0aa19b89de1ac75231611a2"},
	{"transports", "3.1.1.10", true, "33b4553a3b9418121b099ff07882535151edd6a1e81898c63a916aad2cbf90bc"},
	{"mpart01", "3.1.1.11", true, "92147c8e24997bac59629e1b163767697d0d6d499af87f89e325d69968bec3ba"},
	{"unreason", "3.1.1.12", true, "4f939d6ebf4817eea70f011d3209e83732872ffc20ffd304b244084dc392f4d7"},
	{"noreason", "3.1.1.13", true, "07e11e470a69fffa3674de805e5165d1351a9439a91045ee70c9570ea24ab4fe"},
	{"badinv01", "3.1.2.1", false, "9ee2b88f2e0b5a9eeb9bf729b6177f0a0c7d0b5e6c84be593e0480d7962f3ab8"},
	{"clerr", "3.1.2.2", false, "d9da629086a38df433438fb0fb19a8730f34516f049a5520dd0cac3285485290"},
	{"ncl", "3.1.2.3", false, "7ea6538edc1f054fdb6cd1c821040460cffca3cb682fa2e8e2a502d92170b4c2"},
	{"scalar02", "3.1.2.4", false, "53158177326568e9964bce5dcfac27a2bf8a90953bbc03f6c5e2775864a97e4b"},
	{"scalarlg", "3.1.2.5", false, "0957eca31737e3592eb1418bb41e9f5219278a78ff420111620d7fb60175b551"},
	{"quotbal", "3.1.2.6", false, "e61978a2ea359fc666f0336fe4dbc623447532280e3273ea98119b3d3f788c84"},
	{"ltgtruri", "3.1.2.7", false, "bcacb2dc17610e8cc8f9b8b0e3d6ee65ab473f93787a03bbd33579e1cea473df"},
	{"lwsruri", "3.1.2.8", false, "3e22ceeca585ad23cc180208e2dad94e0a5aa4bb877a61cac443aa927f758b9e"},
	{"lwsstart", "3.1.2.9", false, "f884e5626c6c5b1210cfc4a3540b8a28bd52939cff092f3f0c5c971e032adb0e"},
	{"trws", "3.1.2.10", false, "64ae20694026e28c10746b57386b7fd1276de02b6f8d42d418070e87d6f4499f"},
	{"escruri", "3.1.2.11", false, "c3cf30af13a9d107829cc105effd79355f1139c6ecc683a048b4c27951f8f416"},
	{"baddate", "3.1.2.12", false, "1208a6e3e0c8a8c33a06a1f3733d158413cb72e58c379d094c4ecea11e9d4c28"},
	{"regbadct", "3.1.2.13", false, "575d27530275814c1c98be164808fac89a0e2b4fc899dadcd97e6ba499437bda"},
	{"badaspec", "3.1.2.14", false, "f8f6e2f4247287b0be6adb5ac222a6db4759395e44d27d2ddb9b39393e94867e"},
	{"baddn", "3.1.2.15", false, "9d9428e8017092f194ec11077ba6865c251308cdfd7fd9db6a993b28e5748951"},
	{"badvers", "3.1.2.16", false, "037d702d19e934bfeebbd2609050d7d54928d590cf90c78f3914522771dd8e03"},
	{"mismatch01", "3.1.2.17", false, "a2c285636e451e75420da0cc62ee55ca3e398827008418befbfb078726bf0793"},
	{"mismatch02", "3.1.2.18", false, "01b287f9a9c492f7f57405c36c8a2af0e2393896ed2d25fb92b502f2a6722bc4"},
	{"bigcode", "3.1.2.19", false, "f79450070975da54c3525c9a5cbe75bae3c9d8cb92eba609772c26f66f225c2e"},
}

// TestRFC4475Torture runs every RFC 4475 message through sipgo's parser and
// each request it parses through readRequest, and fails on a panic. Where
// sipgo's verdict differs from the RFC's it only logs: the log records which
// invalid messages sipgo accepts.
func TestRFC4475Torture(t *testing.T) {
	t.Parallel()
	files := rfc4475Files(t)
	var acceptedInvalid, rejectedValid []string
	for _, m := range rfc4475Messages {
		data, ok := files[m.name]
		if !ok {
			t.Errorf("%s.dat: missing from testdata/rfc4475", m.name)
			continue
		}
		delete(files, m.name)
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != m.sha256 {
			t.Errorf("%s.dat: SHA-256 %x, want %s (line ends converted?)", m.name, sum, m.sha256)
		}
		err := parseTorture(t, data)
		switch {
		case !m.valid && err == nil:
			acceptedInvalid = append(acceptedInvalid, m.name)
			t.Logf("sipgo accepts %s (RFC 4475 §%s, invalid)", m.name, m.section)
		case m.valid && err != nil:
			rejectedValid = append(rejectedValid, m.name)
			t.Logf("sipgo rejects %s (RFC 4475 §%s, valid): %v", m.name, m.section, err)
		}
	}
	for name := range files {
		t.Errorf("%s.dat: not listed in rfc4475Messages", name)
	}
	slices.Sort(acceptedInvalid)
	slices.Sort(rejectedValid)
	t.Logf("invalid messages sipgo accepts: %s", strings.Join(acceptedInvalid, " "))
	t.Logf("valid messages sipgo rejects: %s", strings.Join(rejectedValid, " "))
}

// parseTorture parses data with sipgo, reads it with readRequest when it is
// a request, and returns sipgo's error. A panic fails t.
func parseTorture(t *testing.T, data []byte) (err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("panic on %q: %v\n%s", data, r, debug.Stack())
		}
	}()
	msg, err := sipmsg.NewParser().ParseSIP(data)
	if err != nil {
		return err
	}
	if req, ok := msg.(*sipmsg.Request); ok {
		readRequest(t, req)
	}
	return nil
}
