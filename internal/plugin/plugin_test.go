package plugin

import (
	"encoding/json"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/settings"
	"github.com/octopods/octopods-operator/internal/testutil"
)

var _ = Describe("kubectl octopods", func() {
	var ns, key string
	BeforeEach(func() {
		ns = newNamespace()
		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "acme"))).To(Succeed())
		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "globex"))).To(Succeed())
		Expect(k8sClient.Create(ctx, testutil.APIKey(ns, "acme"))).To(Succeed())
		key = secretKey(ns, "acme")
	})

	It("get: the settings table, the key shown by its ID only, 'No API key generated' where there is none, and no Secret read", func() {
		secretReads := func() int {
			n, err := testutil.APIServerRequests(ctx, restCfg, true, "GET", "LIST", "WATCH")
			Expect(err).NotTo(HaveOccurred())
			return n["GET secrets"] + n["LIST secrets"] + n["WATCH secrets"]
		}
		before := secretReads()
		r := run(editor, ns, true, "get")
		Expect(r.err).NotTo(HaveOccurred())
		Expect(secretReads()).To(Equal(before), "listing read a Secret")
		lines := strings.Split(strings.TrimSpace(r.out), "\n")
		Expect(lines).To(HaveLen(3))
		Expect(strings.Fields(lines[0])).To(Equal([]string{"WORKSPACE", "PROVIDER", "API", "KEY", "KEY", "ID", "LAST", "USED"}))
		Expect(lines[1]).To(MatchRegexp(`^acme\s+Intercom\s+opk_…\s+` + apikey.ID(key) + `\s+never$`))
		Expect(lines[2]).To(MatchRegexp(`^globex\s+Intercom\s+No API key generated\s+-\s+never$`))
		Expect(r.out).NotTo(ContainSubstring(key[8:]))
	})

	It("get: a viewer sees the key ID, never the key", func() {
		r := run(viewer, ns, true, "get", "acme")
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.out).To(MatchRegexp(`acme\s+Intercom\s+opk_…\s+` + apikey.ID(key)))
		Expect(r.out).To(ContainSubstring(apikey.ID(key)))
		Expect(r.out).NotTo(ContainSubstring(key[4:8]))
	})

	DescribeTable("get -o json|yaml for scripts, without the key",
		func(format string) {
			r := run(editor, ns, false, "get", "-o", format)
			Expect(r.err).NotTo(HaveOccurred())
			Expect(r.out).To(ContainSubstring(apikey.ID(key)))
			Expect(r.out).NotTo(ContainSubstring(key[4:]))
			if format == "json" {
				var rows []settings.Row
				Expect(json.Unmarshal([]byte(r.out), &rows)).To(Succeed())
				Expect(rows).To(HaveLen(2))
				Expect(rows[0].Issued).To(BeTrue())
				Expect(rows[1].HasKey).To(BeFalse())
			}
		},
		Entry("json", "json"),
		Entry("yaml", "yaml"),
	)

	It("a key waiting for its Workspace: get lists it with the reason, and copy says why at once", func() {
		Expect(k8sClient.Create(ctx, testutil.APIKey(ns, "initech"))).To(Succeed())
		Eventually(func(g Gomega) {
			r := run(editor, ns, false, "get", "initech")
			g.Expect(r.err).NotTo(HaveOccurred())
			g.Expect(r.out).To(MatchRegexp(`initech\s+-\s+\(WorkspaceNotFound: Waiting for Workspace "initech"`))
		}).Should(Succeed())
		start := time.Now()
		r := run(editor, ns, false, "copy", "initech")
		Expect(r.err).To(MatchError(ContainSubstring(`the key of "initech" is not issued: WorkspaceNotFound: Waiting for Workspace "initech"`)))
		Expect(time.Since(start)).To(BeNumerically("<", 3*time.Second), "no wait for what waiting cannot bring")
	})

	DescribeTable("refuses with a sentence that says what to do",
		func(user string, args []string, want string) {
			r := run(user, ns, false, args...)
			Expect(r.err).To(MatchError(ContainSubstring(want)))
			Expect(r.out).To(BeEmpty())
		},
		Entry("create: no such workspace", editor, []string{"create", "initech"}, `workspace "initech" does not exist in namespace`),
		Entry("create: a key exists", editor, []string{"create", "acme"}, "copy it with `kubectl octopods copy acme -n "),
		Entry("create: a viewer may not", viewer, []string{"create", "globex"}, `you may not create workspaceapikeys in namespace`),
		Entry("create: a rotator may not", rotator, []string{"create", "globex"}, `verb "create" on "workspaceapikeys"`),
		Entry("copy: a viewer may not read the key", viewer, []string{"copy", "acme"}, `you may not get secrets`),
		Entry("copy: a rotator may not read the key", rotator, []string{"copy", "acme"}, `verb "get" on "secrets"`),
		Entry("copy: no key", editor, []string{"copy", "globex"}, "create one with `kubectl octopods create globex -n "),
		// A workspace that is not there, or a wrong -n: no advice that fails.
		Entry("copy: no such workspace", editor, []string{"copy", "nosuch"}, `workspace "nosuch" does not exist in namespace`),
		Entry("rotate: no such workspace", editor, []string{"rotate", "nosuch"}, `workspace "nosuch" does not exist in namespace`),
		Entry("audit: no such workspace", editor, []string{"audit", "nosuch"}, `workspace "nosuch" does not exist in namespace`),
		Entry("rotate: no key", editor, []string{"rotate", "globex"}, "has no API key to rotate: create one with `kubectl octopods create globex -n "),
		Entry("rotate: a viewer may not", viewer, []string{"rotate", "acme"}, `you may not patch workspaceapikeys`),
		Entry("get: a workspace that does not exist", editor, []string{"get", "initech"}, `no workspace initech`),
		Entry("get: an unknown format", editor, []string{"get", "-o", "wide"}, `use json or yaml`),
		Entry("no workspace named", editor, []string{"copy"}, "give one WORKSPACE name"),
	)

	It("copy: the key and nothing else on a pipe; never to a terminal without --show", func() {
		r := run(editor, ns, false, "copy", "acme")
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.out).To(Equal(key + "\n"))
		Expect(r.errOut).To(BeEmpty())

		r = run(editor, ns, true, "copy", "acme")
		Expect(r.err).To(MatchError(And(ContainSubstring("not printing the key"), ContainSubstring("| pbcopy"), ContainSubstring("--show"))))
		Expect(r.out).To(BeEmpty())

		r = run(editor, ns, true, "copy", "acme", "--show")
		Expect(r.out).To(Equal(key + "\n"))
	})

	It("create, then copy at once: copy waits for the key just created", func() {
		r := run(editor, ns, false, "create", "globex")
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.out).To(ContainSubstring("kubectl octopods copy globex"))
		r = run(editor, ns, false, "copy", "globex")
		Expect(r.err).NotTo(HaveOccurred())
		Expect(strings.TrimSpace(r.out)).To(Equal(secretKey(ns, "globex")))
	})

	It("rotate: as support, prints the old and new key IDs and the grace period; audit names who did it", func() {
		r := run(rotator, ns, false, "rotate", "acme", "--token", "TICKET-7")
		Expect(r.err).NotTo(HaveOccurred())
		k := &octopodsv1alpha1.WorkspaceAPIKey{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "acme"}, k)).To(Succeed())
		Expect(k.Status.KeyID).NotTo(Equal(apikey.ID(key)))
		Expect(r.out).To(ContainSubstring("Rotated the key of acme: " + apikey.ID(key) + " → " + k.Status.KeyID + ` (token "TICKET-7")`))
		Expect(r.out).To(ContainSubstring("stopped working at once (grace period 0s)"))

		r = run(rotator, ns, false, "rotate", "acme", "--token", "TICKET-7")
		Expect(r.err).To(MatchError(ContainSubstring(`token "TICKET-7" was already used`)))

		r = run(rotator, ns, false, "audit", "acme")
		Expect(r.err).NotTo(HaveOccurred())
		for _, want := range []string{"Key ID:", k.Status.KeyID, `(token "TICKET-7")`, "Revoked keys (kept 30 days):", apikey.ID(key), "Recent events:", "KeyRotated", "KeyIssued"} {
			Expect(r.out).To(ContainSubstring(want))
		}
		Expect(r.out).NotTo(ContainSubstring(key[4:]))
	})

	It("rotate without --token uses a fresh time-stamped token", func() {
		r := run(editor, ns, false, "rotate", "acme")
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.out).To(MatchRegexp(`token "rotate-\d{8}T\d{6}Z"`))
	})

	It("completes workspace names", func() {
		r := run(editor, ns, false, "__complete", "copy", "")
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.out).To(HavePrefix("acme\nglobex\n"))
	})
})
