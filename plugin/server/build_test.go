package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mattermost/mattermost/server/public/model"
)

func readManifest(t *testing.T, data []byte) *model.Manifest {
	t.Helper()
	var m model.Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("plugin.json: %v", err)
	}
	if err := m.IsValid(); err != nil {
		t.Fatalf("plugin.json is not a valid manifest: %v", err)
	}
	return &m
}

// TestManifest checks plugin/plugin.json: the id the code uses, the server
// version the hooks need, the executable path, and the settings the code
// reads (secrets marked secret).
func TestManifest(t *testing.T) {
	data, err := os.ReadFile("../plugin.json")
	if err != nil {
		t.Fatal(err)
	}
	m := readManifest(t, data)
	if m.Id != pluginID || m.MinServerVersion != "9.11.0" || m.Version == "" {
		t.Fatalf("id %q, min_server_version %q, version %q", m.Id, m.MinServerVersion, m.Version)
	}
	if m.Server == nil || m.Server.Executables["linux-amd64"] != "server/dist/plugin-linux-amd64" {
		t.Fatalf("server executables %+v", m.Server)
	}
	type setting struct {
		typ    string
		secret bool
	}
	want := map[string]setting{"SealgateURL": {"text", false}, "IngestToken": {"text", true}, "ForwardFileContent": {"bool", false},
		"SealgateOrdersURL": {"text", false}, "PluginSecret": {"text", true}}
	if m.SettingsSchema == nil || len(m.SettingsSchema.Settings) != len(want) {
		t.Fatalf("settings schema %+v", m.SettingsSchema)
	}
	for _, s := range m.SettingsSchema.Settings {
		w, ok := want[s.Key]
		if !ok || s.Secret != w.secret || s.Type != w.typ {
			t.Errorf("setting %s: type %s secret %v", s.Key, s.Type, s.Secret)
		}
	}
	// The file-content switch is off by default: forwarding the bytes is a
	// decision the deployment makes, not a silent default.
	for _, s := range m.SettingsSchema.Settings {
		if s.Key == "ForwardFileContent" && s.Default != false {
			t.Errorf("ForwardFileContent defaults to %v", s.Default)
		}
	}
}

// TestBuildBundle runs plugin/build.sh and checks the bundle Mattermost
// accepts: a .tar.gz whose top folder is the plugin id, with plugin.json and
// the linux-amd64 executable it names.
func TestBuildBundle(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin binary (-short)")
	}
	out := t.TempDir()
	cmd := exec.Command("bash", "../build.sh", out)
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	msg, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("build.sh: %v\n%s", err, msg)
	}
	src, _ := os.ReadFile("../plugin.json")
	m := readManifest(t, src)
	bundle := filepath.Join(out, pluginID+"-"+m.Version+".tar.gz")
	if got := strings.TrimSpace(string(msg)); !strings.HasSuffix(got, bundle) {
		t.Fatalf("build.sh printed %q, want %s", got, bundle)
	}
	f, err := os.Open(bundle)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if top, _, _ := strings.Cut(h.Name, "/"); top != pluginID {
			t.Fatalf("entry %s outside the top folder %s", h.Name, pluginID)
		}
		if h.Typeflag == tar.TypeReg {
			files[strings.TrimPrefix(h.Name, pluginID+"/")], _ = io.ReadAll(tr)
			if h.Name == pluginID+"/server/dist/plugin-linux-amd64" && h.Mode&0o111 == 0 {
				t.Fatal("executable is not executable")
			}
		}
	}
	if !bytes.Equal(files["plugin.json"], src) {
		t.Fatal("bundled plugin.json differs from plugin/plugin.json")
	}
	exe := files[m.Server.Executables["linux-amd64"]]
	bin, err := elf.NewFile(bytes.NewReader(exe))
	if err != nil {
		t.Fatalf("executable %s: %v", m.Server.Executables["linux-amd64"], err)
	}
	if bin.Machine != elf.EM_X86_64 || bin.Type != elf.ET_EXEC {
		t.Fatalf("executable is %v %v, want a static x86-64 executable", bin.Machine, bin.Type)
	}
	if len(files) != 2 {
		t.Fatalf("bundle holds %d files, want plugin.json and the executable", len(files))
	}
}
