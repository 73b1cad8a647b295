"""A virtual-server lab: N libvirt VMs, each behind a Redfish BMC of its own.

``provision lab up N`` is what users run to try the bare-metal path without hardware, and what
the bare-metal end-to-end tests run on, the way OpenStack Ironic and Metal3 test theirs:

* every server is a libvirt domain (QEMU, type ``qemu``: software emulation) with UEFI
  firmware, a blank root disk, K blank NVMe drives, a NIC on an isolated network the lab
  creates (no host address on it, no forwarding: cluster traffic stays between the VMs) and a
  management NIC in QEMU user-mode networking, isolated too (``restrict=on``), whose only
  opening is SSH forwarded from 127.0.0.1;
* every server has its own BMC: a sushy-tools Redfish emulator on 127.0.0.1, HTTPS with a
  certificate from the lab's own CA, HTTP basic auth with a generated password, allowed to see
  only that one domain;
* ``provision lab down`` removes every domain, disk, network, storage pool and process the lab
  made, and says what it could not remove.

Modules: :mod:`.daemons` (libvirtd/virtlogd), :mod:`.domain` (domain, network and pool XML),
:mod:`.bmc` (emulator processes, TLS, credentials), :mod:`.lab` (up/down/state and the plan
block it prints).
"""
