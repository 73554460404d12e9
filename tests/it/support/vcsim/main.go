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
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

func main() {
	cert := flag.String("tlscert", "", "server certificate (PEM)")
	key := flag.String("tlskey", "", "server key (PEM)")
	user := flag.String("username", "deployer", "the one user that may log in")
	flag.Parse()
	password := os.Getenv("VCSIM_PASSWORD")
	if password == "" {
		log.Fatal("set VCSIM_PASSWORD")
	}

	model := simulator.VPX()
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
	u := *server.URL
	u.User = nil
	fmt.Println(u.String())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}

// shape gives the tests one VM per case: DC0_H0_VM0 keeps its e1000 and BIOS firmware,
// DC0_C0_RP0_VM0 gets a vmxnet3 NIC, DC0_C0_RP0_VM1 boots EFI.
func shape() {
	for _, ref := range simulator.Map.All("VirtualMachine") {
		vm := ref.(*simulator.VirtualMachine)
		switch vm.Name {
		case "DC0_C0_RP0_VM0":
			for i, d := range vm.Config.Hardware.Device {
				if e, ok := d.(*types.VirtualE1000); ok {
					vm.Config.Hardware.Device[i] = &types.VirtualVmxnet3{
						VirtualVmxnet: types.VirtualVmxnet{VirtualEthernetCard: e.VirtualEthernetCard},
					}
				}
			}
		case "DC0_C0_RP0_VM1":
			vm.Config.Firmware = string(types.GuestOsDescriptorFirmwareTypeEfi)
		}
	}
}
