//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/testutil"
)

// browserTimeout bounds each browser session.
const browserTimeout = 90 * time.Second

// settingsPage runs `kubectl octopods ui` as user in ns and returns the
// one-time login URL.
func settingsPage(ns, user string) string {
	cmd := exec.Command(pluginBin, "ui", "--no-browser", "--kubeconfig", env.Kubeconfig, "-n", ns, "--as", user)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	Expect(err).NotTo(HaveOccurred())
	cmd.Stderr = GinkgoWriter
	Expect(cmd.Start()).To(Succeed())
	DeferCleanup(func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	Expect(err).NotTo(HaveOccurred())
	url := strings.TrimSpace(strings.TrimPrefix(line, "Settings page: "))
	Expect(url).To(MatchRegexp(`^http://127\.0\.0\.1:\d+/#login=[A-Za-z0-9_-]{43}$`))
	return url
}

// newBrowser is a headless Chromium (Debian's, which .ci/run installs).
func newBrowser() context.Context {
	_, err := exec.LookPath("chromium")
	Expect(err).NotTo(HaveOccurred(), "the settings page's browser test needs Chromium: apt-get install chromium (.ci/run does)")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.NoSandbox, // CI runs as root
		chromedp.WindowSize(1280, 860),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	tctx, cancelTimeout := context.WithTimeout(bctx, browserTimeout)
	DeferCleanup(func() { cancelTimeout(); cancelBrowser(); cancelAlloc() })
	return tctx
}

func outerHTML(b context.Context) string {
	html, err := chromedp.Run(b, chromedp.OuterHTML(chromedp.CSS("html")))
	Expect(err).NotTo(HaveOccurred())
	return html
}

// allowClipboard lets the page write and read the clipboard, as a person's
// click would.
func allowClipboard(b context.Context, origin string) {
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		_, err := chromedp.CallBrowser(b, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: name, AllowWithoutSanitization: true},
			Setting:    "granted", Origin: origin,
		})
		Expect(err).NotTo(HaveOccurred())
	}
}

var _ = Describe("The settings page in a real browser", func() {
	It("creates a key, shows it masked, copies exactly the Secret's key with a green check mark; a viewer gets no buttons", func() {
		applyPeopleRoles()
		ns := newNamespace()
		as(ns, "member@acme.example", "workspace-editor")
		as(ns, "viewer@acme.example", "workspace-viewer")
		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "acme"))).To(Succeed())
		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "globex"))).To(Succeed())
		started := time.Now()

		login := settingsPage(ns, "member@acme.example")
		origin := strings.SplitN(login, "/#login", 2)[0]
		b := newBrowser()
		Expect(chromedp.Do(b, chromedp.Navigate("about:blank"))).To(Succeed())
		allowClipboard(b, origin)
		Expect(chromedp.Do(b,
			chromedp.Navigate(login),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-workspace="acme"] .no-key`)),
		)).To(Succeed())
		noKey, err := chromedp.Run(b, chromedp.Text(chromedp.CSS(`tr[data-workspace="acme"] .no-key`)))
		Expect(err).NotTo(HaveOccurred())
		Expect(noKey).To(Equal("No API key generated"))

		By("Create API Key")
		Expect(chromedp.Do(b,
			chromedp.Click(chromedp.CSS(`tr[data-workspace="acme"] button.create`)),
			chromedp.WaitVisible(chromedp.CSS(`#key-acme`)),
		)).To(Succeed())
		masked, err := chromedp.Run(b, chromedp.Value(chromedp.CSS(`#key-acme`)))
		Expect(err).NotTo(HaveOccurred())
		Expect(masked).To(HavePrefix("opk_•"))
		key := waitIssued(ns, "acme")
		Expect(outerHTML(b)).NotTo(ContainSubstring(key[4:]), "the key is not in the page before it is copied")

		By("copy: a green check mark, and the Secret's key on the clipboard")
		Expect(chromedp.Do(b,
			chromedp.Click(chromedp.CSS(`tr[data-workspace="acme"] button.copy`)),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-workspace="acme"] button.copy.copied`)),
		)).To(Succeed())
		check, err := chromedp.Run(b, chromedp.Text(chromedp.CSS(`tr[data-workspace="acme"] button.copy`)))
		Expect(err).NotTo(HaveOccurred())
		Expect(check).To(Equal("✓"))
		color, err := chromedp.Run(b, chromedp.Evaluate[string](`getComputedStyle(document.querySelector('tr[data-workspace="acme"] button.copy')).backgroundColor`))
		Expect(err).NotTo(HaveOccurred())
		Expect(color).To(Equal("rgb(26, 127, 55)"), "green")
		clipboard, err := chromedp.Run(b, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
		Expect(err).NotTo(HaveOccurred())
		Expect(clipboard).To(Equal(key))
		Expect(outerHTML(b)).NotTo(ContainSubstring(key[4:]), "copying does not put the key in the page")
		screenshot, err := chromedp.Run(b, chromedp.FullScreenshot(100))
		Expect(err).NotTo(HaveOccurred())
		saveScreenshot(screenshot)
		Expect(chromedp.Do(b, chromedp.WaitNotPresent(chromedp.CSS(`tr[data-workspace="acme"] button.copy.copied`)))).To(Succeed(),
			"the check mark goes back after about two seconds")

		By("no cookie; requests without the page's session header, or from another origin, are refused")
		cookies, err := chromedp.Call(b, network.GetCookies, network.GetCookiesParams{URLs: []string{origin}})
		Expect(err).NotTo(HaveOccurred())
		Expect(cookies.Cookies).To(BeEmpty(), "a 127.0.0.1 cookie would go to every local port")
		address, err := chromedp.Run(b, chromedp.Evaluate[string](`location.href`))
		Expect(err).NotTo(HaveOccurred())
		Expect(address).To(Equal(origin+"/"), "the login token leaves the address bar")
		session, err := chromedp.Run(b, chromedp.Evaluate[string](`sessionStorage.getItem("octopods-session")`))
		Expect(err).NotTo(HaveOccurred())
		post := func(withSession bool, from string) int {
			req, _ := http.NewRequest(http.MethodPost, origin+"/api/copy", strings.NewReader(`{"namespace":"`+ns+`","workspace":"acme"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Origin", from)
			if withSession {
				req.Header.Set("X-Octopods-Session", session)
			}
			res, err := httpClient.Do(req)
			Expect(err).NotTo(HaveOccurred())
			_ = res.Body.Close()
			return res.StatusCode
		}
		Expect(post(false, origin)).To(Equal(http.StatusUnauthorized))
		Expect(post(true, "https://evil.example")).To(Equal(http.StatusForbidden))
		Expect(post(true, origin)).To(Equal(http.StatusOK), "the same request from the page's own origin works")

		By("a viewer sees the table and no button")
		viewer := newBrowser()
		Expect(chromedp.Do(viewer,
			chromedp.Navigate(settingsPage(ns, "viewer@acme.example")),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-workspace="globex"] .no-key`)),
			chromedp.WaitVisible(chromedp.CSS(`#key-acme`)),
		)).To(Succeed())
		buttons, err := chromedp.Run(viewer, chromedp.Evaluate[int](`document.querySelectorAll("button.create, button.copy, button.reveal, button.rotate").length`))
		Expect(err).NotTo(HaveOccurred())
		Expect(buttons).To(BeZero())
		figure("settings page in headless Chromium: create, copy, refusals and the viewer's page took %s", time.Since(started).Round(100*time.Millisecond))
	})
})

// saveScreenshot keeps the page as a test artifact (bin/e2e-artifacts), and
// as the README's picture when UPDATE_SCREENSHOT=1.
func saveScreenshot(png []byte) {
	dir := filepath.Join(root, "bin", "e2e-artifacts")
	Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
	Expect(os.WriteFile(filepath.Join(dir, "settings-page.png"), png, 0o644)).To(Succeed())
	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		Expect(os.WriteFile(filepath.Join(root, "docs", "settings-page.png"), png, 0o644)).To(Succeed())
	}
}

var _ = Describe("The settings page's Channels view in a real browser", func() {
	It("shows each channel's key in a card labelled by type, creates, copies with the green check mark and rotates it; a viewer gets no buttons", func() {
		applyPeopleRoles()
		ns := newNamespace()
		as(ns, "member@acme.example", "workspace-editor")
		as(ns, "support@acme.example", "key-rotator")
		as(ns, "viewer@acme.example", "workspace-viewer")
		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "acme"))).To(Succeed())
		Expect(k8sClient.Create(ctx, testutil.Channel(ns, "sms-1", "acme", octopodsv1alpha1.ChannelSMS))).To(Succeed())
		Expect(k8sClient.Create(ctx, testutil.Channel(ns, "viber", "acme", octopodsv1alpha1.ChannelVBM))).To(Succeed())
		Expect(k8sClient.Create(ctx, testutil.WhatsAppBusinessAccount(ns, "waba", "acme"))).To(Succeed())

		login := settingsPage(ns, "member@acme.example")
		origin := strings.SplitN(login, "/#login", 2)[0]
		b := newBrowser()
		Expect(chromedp.Do(b, chromedp.Navigate("about:blank"))).To(Succeed())
		allowClipboard(b, origin)
		sms := `article[data-target="channel/sms-1"]`
		Expect(chromedp.Do(b,
			chromedp.Navigate(login),
			chromedp.WaitVisible(chromedp.CSS(sms+` .no-key`)),
		)).To(Succeed())
		labels, err := chromedp.Run(b, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#channels .key-card h4")].map(h => h.textContent)`))
		Expect(err).NotTo(HaveOccurred())
		Expect(labels).To(ConsistOf("Twilio API Key", "VBM API Key", "WhatsApp Business API Key"))

		By("Create API Key on the SMS channel's card")
		Expect(chromedp.Do(b,
			chromedp.Click(chromedp.CSS(sms+` button.create`)),
			chromedp.WaitVisible(chromedp.CSS(`[id="key-channel/sms-1"]`)),
		)).To(Succeed())
		masked, err := chromedp.Run(b, chromedp.Value(chromedp.CSS(`[id="key-channel/sms-1"]`)))
		Expect(err).NotTo(HaveOccurred())
		Expect(masked).To(HavePrefix("opc_•"))
		channelKey := &octopodsv1alpha1.ChannelAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sms-1"}}
		key := testutil.IssuedKeyOf(k8sClient, channelKey, issueTimeout, pollEvery)
		Expect(channelKey.Annotations).To(HaveKeyWithValue(octopodsv1alpha1.CreatedByAnnotation, "member@acme.example"), "created as the person")

		By("copy: the green check mark, and the Secret's key on the clipboard")
		Expect(chromedp.Do(b,
			chromedp.Click(chromedp.CSS(sms+` button.copy`)),
			chromedp.WaitVisible(chromedp.CSS(sms+` button.copy.copied`)),
		)).To(Succeed())
		color, err := chromedp.Run(b, chromedp.Evaluate[string](`getComputedStyle(document.querySelector('`+sms+` button.copy')).backgroundColor`))
		Expect(err).NotTo(HaveOccurred())
		Expect(color).To(Equal("rgb(26, 127, 55)"), "green")
		clipboard, err := chromedp.Run(b, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
		Expect(err).NotTo(HaveOccurred())
		Expect(clipboard).To(Equal(key))
		Expect(outerHTML(b)).NotTo(ContainSubstring(key[4:]), "copying does not put the key in the page")

		By("support (the key-rotator role) rotates it from its card")
		support := newBrowser()
		Expect(chromedp.Do(support,
			chromedp.Navigate(settingsPage(ns, "support@acme.example")),
			chromedp.WaitVisible(chromedp.CSS(sms+` button.rotate`)),
		)).To(Succeed())
		_, err = chromedp.Run(support, chromedp.Evaluate[bool](`window.confirm = () => true; true`)) // the dialog says yes
		Expect(err).NotTo(HaveOccurred())
		Expect(chromedp.Do(support, chromedp.Click(chromedp.CSS(sms+` button.rotate`)))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(channelKey), channelKey)).To(Succeed())
			g.Expect(channelKey.Status.KeyID).NotTo(Equal(apikey.ID(key)))
			g.Expect(channelKey.Status.LastRotatedBy).To(Equal("support@acme.example"))
		}, issueTimeout, pollEvery).Should(Succeed())

		By("a viewer sees the cards and no button")
		viewer := newBrowser()
		Expect(chromedp.Do(viewer,
			chromedp.Navigate(settingsPage(ns, "viewer@acme.example")),
			chromedp.WaitVisible(chromedp.CSS(`[id="key-channel/sms-1"]`)),
			chromedp.WaitVisible(chromedp.CSS(`article[data-target="whatsapp/waba"] .no-key`)),
		)).To(Succeed())
		buttons, err := chromedp.Run(viewer, chromedp.Evaluate[int](`document.querySelectorAll("#channels button").length`))
		Expect(err).NotTo(HaveOccurred())
		Expect(buttons).To(BeZero())
	})
})
