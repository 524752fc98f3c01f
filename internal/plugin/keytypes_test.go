package plugin

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/testutil"
)

// Every command takes channel/NAME and whatsapp/NAME as it takes a
// workspace, acting as the person: the editor creates and copies, the
// rotator rotates, the viewer sees key IDs.
var _ = Describe("kubectl octopods with channel and WhatsApp Business keys", func() {
	var ns string
	BeforeEach(func() {
		ns = newNamespace()
		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "acme"))).To(Succeed())
		Expect(k8sClient.Create(ctx, testutil.Channel(ns, "sms-1", "acme", octopodsv1alpha1.ChannelSMS))).To(Succeed())
		Expect(k8sClient.Create(ctx, testutil.Channel(ns, "bot", "acme", octopodsv1alpha1.ChannelTelegram))).To(Succeed())
		Expect(k8sClient.Create(ctx, testutil.WhatsAppBusinessAccount(ns, "waba", "acme"))).To(Succeed())
	})

	It("creates, lists, copies, rotates and audits a channel key and a WhatsApp key", func() {
		r := run(viewer, ns, false, "get", "channels")
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.out).To(MatchRegexp(`channel/sms-1\s+SMS\s+acme\s+Twilio API Key\s+No API key generated`))
		Expect(r.out).To(MatchRegexp(`channel/bot\s+Telegram\s+acme\s+Telegram API Key\s+No API key generated`))

		Expect(run(viewer, ns, false, "create", "channel/sms-1").err).To(MatchError(ContainSubstring(`may not create channelapikeys`)))
		for _, target := range []string{"channel/sms-1", "whatsapp/waba"} {
			r = run(editor, ns, false, "create", target)
			Expect(r.err).NotTo(HaveOccurred())
			Expect(r.out).To(ContainSubstring("kubectl octopods copy " + target))
		}
		sms := run(editor, ns, false, "copy", "channel/sms-1")
		Expect(sms.err).NotTo(HaveOccurred())
		smsKey := strings.TrimSpace(sms.out)
		Expect(smsKey).To(HavePrefix(apikey.PrefixChannel))
		Expect(apikey.Validate(smsKey)).To(Succeed())
		wa := run(editor, ns, false, "copy", "whatsapp/waba")
		Expect(wa.err).NotTo(HaveOccurred())
		Expect(strings.TrimSpace(wa.out)).To(HavePrefix(apikey.PrefixWhatsApp))
		Expect(run(viewer, ns, false, "copy", "channel/sms-1").err).To(MatchError(ContainSubstring("may not get secrets")))

		r = run(viewer, ns, false, "get", "whatsapp")
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.out).To(MatchRegexp(`whatsapp/waba\s+WhatsApp\s+acme\s+WhatsApp Business API Key\s+opw_…\s+` + apikey.ID(strings.TrimSpace(wa.out))))
		Expect(r.out).NotTo(ContainSubstring(strings.TrimSpace(wa.out)[4:]))

		r = run(viewer, ns, false, "get", "channel/sms-1", "whatsapp/waba")
		Expect(r.err).NotTo(HaveOccurred())
		Expect(strings.Split(strings.TrimSpace(r.out), "\n")).To(HaveLen(3), "a header and the two named rows: %s", r.out)
		Expect(r.out).NotTo(ContainSubstring("channel/bot"))
		Expect(run(viewer, ns, false, "get", "channel/nope").err).To(MatchError(ContainSubstring(`no channel "nope" in namespace`)))

		r = run(rotator, ns, false, "rotate", "channel/sms-1", "--token", "LEAK-7")
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.out).To(ContainSubstring("Rotated the key of channel/sms-1: " + apikey.ID(smsKey) + " → "))
		r = run(rotator, ns, false, "audit", "channel/sms-1")
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.out).To(MatchRegexp(`Channel:\s+` + ns + `/sms-1`))
		Expect(r.out).To(MatchRegexp(`Workspace:\s+acme`))
		Expect(r.out).To(ContainSubstring(apikey.ID(smsKey) + "  revoked"))
	})

	It("says which owner is missing, and how to list the ones there are", func() {
		r := run(editor, ns, false, "create", "channel/nope")
		Expect(r.err).To(MatchError(ContainSubstring(`channel "nope" does not exist in namespace "` + ns + `": see ` + "`kubectl octopods get channels -n " + ns + "`")))
		r = run(editor, ns, false, "copy", "whatsapp/waba")
		Expect(r.err).To(MatchError(ContainSubstring(`WhatsApp Business Account "waba" in namespace "` + ns + `" has no API key: create one with ` + "`kubectl octopods create whatsapp/waba -n " + ns + "`")))
		r = run(editor, ns, false, "copy", "fax/x")
		Expect(r.err).To(MatchError(ContainSubstring("name a workspace (NAME), a channel (channel/NAME) or a WhatsApp Business Account (whatsapp/NAME)")))
	})
})
