// A local vSphere API server for the deploy tests: govmomi's simulator (vcsim) with the VPX
// inventory, listening on 127.0.0.1 only, over TLS with the certificate the test hands it.
//
// It prints the SDK URL (without credentials) on stdout and serves until killed. The password
// comes from the environment, never from the command line.
//
// Build (Debian: golang-go, golang-github-vmware-govmomi-dev):
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o vcsim ./tests/it/support/vcsim
package main

import (
	"bytes"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"sync"
	"syscall"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

func main() {
	cert := flag.String("tlscert", "", "server certificate (PEM)")
	key := flag.String("tlskey", "", "server key (PEM)")
	user := flag.String("username", "deployer", "the one user that may log in")
	machines := flag.Int("machines", 2, "VMs per host and per cluster resource pool")
	flag.Parse()
	password := os.Getenv("VCSIM_PASSWORD")
	if password == "" {
		log.Fatal("set VCSIM_PASSWORD")
	}

	model := simulator.VPX()
	model.Machine = *machines
	if err := model.Create(); err != nil {
		log.Fatal(err)
	}
	defer model.Remove()
	shape()

	model.Service.Listen = &url.URL{Host: "127.0.0.1:0", User: url.UserPassword(*user, password)}
	if *cert != "" {
		pair, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			log.Fatal(err)
		}
		model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	}
	server := model.Service.NewServer()
	defer server.Close()
	server.Config.Handler = &versions{next: server.Config.Handler}
	u := *server.URL
	u.User = nil
	fmt.Println(u.String())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}

// shape gives the tests one VM per case: DC0_H0_VM0 keeps its e1000 and BIOS firmware,
// DC0_C0_RP0_VM0 gets a vmxnet3 NIC, DC0_C0_RP0_VM1 boots EFI. DC0_H0_VM1 has had its
// ethernet0 removed: its one adapter is ethernet1 (vmxnet3, PCI unit 8, key 4001).
// With -machines over 2, the fleet DC0_C0_RP0_VM2 and on get vmxnet3, and every other one EFI.
func shape() {
	for _, ref := range simulator.Map.All("VirtualMachine") {
		vm := ref.(*simulator.VirtualMachine)
		vm.Config.ChangeVersion = "2026-12-01T00:00:00.0Z"
		var n int
		fleet := false
		if _, err := fmt.Sscanf(vm.Name, "DC0_C0_RP0_VM%d", &n); err == nil && n >= 2 {
			fleet = true
		}
		switch {
		case vm.Name == "DC0_C0_RP0_VM0":
			toVmxnet3(vm)
		case vm.Name == "DC0_C0_RP0_VM1":
			vm.Config.Firmware = string(types.GuestOsDescriptorFirmwareTypeEfi)
		case vm.Name == "DC0_H0_VM1":
			toVmxnet3(vm)
			for _, d := range vm.Config.Hardware.Device {
				if e, ok := d.(types.BaseVirtualEthernetCard); ok {
					card := e.GetVirtualEthernetCard()
					unit := int32(8)
					card.Key = 4001
					card.UnitNumber = &unit
				}
			}
		case fleet:
			toVmxnet3(vm)
			if n%2 == 1 {
				vm.Config.Firmware = string(types.GuestOsDescriptorFirmwareTypeEfi)
			}
		}
	}
}

// versions plays vCenter's part for config.changeVersion, which this simulator lacks: every VM
// has one, each reconfiguration that goes through gets a new one, and a ReconfigVM_Task whose
// spec carries a changeVersion that is no longer the VM's is refused with ConcurrentAccess, as
// the vim25 reference says of VirtualMachineConfigSpec.changeVersion.
type versions struct {
	mu   sync.Mutex
	next http.Handler
	n    int
}

var (
	reconfigThis = regexp.MustCompile(`<ReconfigVM_Task[^>]*>\s*<_this[^>]*>([^<]+)</_this>`)
	specVersion  = regexp.MustCompile(`<spec[^>]*>\s*<changeVersion>([^<]*)</changeVersion>`)
)

const concurrentAccess = `<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>Cannot complete operation due to concurrent modification by another operation.</faultstring><detail><ConcurrentAccessFault xmlns="urn:vim25" xsi:type="ConcurrentAccess"></ConcurrentAccessFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>`

func (v *versions) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	m := reconfigThis.FindSubmatch(body)
	if m == nil {
		v.next.ServeHTTP(w, r)
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	ref := types.ManagedObjectReference{Type: "VirtualMachine", Value: string(m[1])}
	vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		v.next.ServeHTTP(w, r)
		return
	}
	if want := specVersion.FindSubmatch(body); want != nil && string(want[1]) != vm.Config.ChangeVersion {
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, concurrentAccess)
		return
	}
	v.next.ServeHTTP(w, r)
	v.n++
	vm.Config.ChangeVersion = "2026-12-01T00:00:00." + strconv.Itoa(v.n) + "Z"
}

// toVmxnet3 turns the VM's e1000 into a vmxnet3 on the same slot.
func toVmxnet3(vm *simulator.VirtualMachine) {
	for i, d := range vm.Config.Hardware.Device {
		if e, ok := d.(*types.VirtualE1000); ok {
			vm.Config.Hardware.Device[i] = &types.VirtualVmxnet3{
				VirtualVmxnet: types.VirtualVmxnet{VirtualEthernetCard: e.VirtualEthernetCard},
			}
		}
	}
}
