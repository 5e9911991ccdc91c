import XCTest
@testable import HostSystem
@testable import ControllerCore

/// DefineVMFromXML's allowlist on its own (the bus, polkit and libvirt are in
/// IntegrationTests/CallerBoundaryTests): each class of host reach from issue 33 is refused
/// by its path, and what the service and libvirt write passes.
final class DomainAllowlistTests: XCTestCase {
    static func domain(_ devices: String, os: String = "<os><type>hvm</type></os>", extra: String = "") -> String {
        "<domain type='qemu'><name>x</name><memory unit='MiB'>64</memory>\(os)\(extra)<devices>\(devices)</devices></domain>"
    }

    func refused(_ xml: String, naming: String, passthrough: Bool = false, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try DomainAllowlist.check(XElement.parse(xml), allowPassthrough: passthrough), file: file, line: line) { error in
            XCTAssertEqual((error as? ControllerError)?.kind, "InvalidArgs", file: file, line: line)
            XCTAssertTrue("\(error)".contains(naming), "expected \(naming) in: \(error)", file: file, line: line)
        }
    }

    func testEachHostReachOfTheIssueIsRefusedByItsPath() {
        refused(Self.domain("<disk type='block' device='disk'><source dev='/dev/sda'/><target dev='vda'/></disk>"),
                naming: "/domain/devices/disk[1]/@type='block'")
        refused(Self.domain("<serial type='file'><source path='/etc/cron.d/x'/></serial>"), naming: "/domain/devices/serial[1]/@type='file'")
        refused(Self.domain("<serial type='pty'><log file='/etc/cron.d/x'/></serial>"), naming: "/domain/devices/serial[1]/log is not an element")
        refused(Self.domain("<channel type='unix'><source mode='bind' path='/run/x.sock'/><target type='virtio' name='a.b'/></channel>"),
                naming: "/domain/devices/channel[1]/source/@path='/run/x.sock'")
        refused(Self.domain("", extra: "<seclabel type='static' model='dac'><label>+0:+0</label></seclabel>"),
                naming: "/domain/seclabel[1]/@type='static'")
        refused(Self.domain("", extra: "<seclabel type='dynamic' model='dac' relabel='no'/>"), naming: "/domain/seclabel[1]/@relabel='no'")
        refused(Self.domain("", extra: "<seclabel type='none'/>"), naming: "only the stub model 'none' may have type 'none'")
        refused(Self.domain("", extra: "<seclabel type='none' model='dac'/>"), naming: "/domain/seclabel[1]: type='none' with model='dac'")
        XCTAssertNoThrow(try DomainAllowlist.check(XElement.parse(Self.domain("", extra: "<seclabel type='none' model='none'/><seclabel type='dynamic' model='dac' relabel='yes'/>")),
                                                   allowPassthrough: false), "what libvirt writes on a host without AppArmor or SELinux")
        refused(Self.domain("<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/var/lib/x.img'><seclabel model='dac' relabel='no'/></source><target dev='vda'/></disk>"),
                naming: "/domain/devices/disk[1]/source/seclabel")
        refused(Self.domain("", os: "<os><type>hvm</type><loader>/root/evil.fd</loader></os>"), naming: "/domain/os/loader")
        refused(Self.domain("", os: "<os><type>hvm</type><dtb>/root/x.dtb</dtb></os>"), naming: "/domain/os/dtb")
        refused(Self.domain("<input type='evdev'><source dev='/dev/input/event0'/></input>"), naming: "/domain/devices/input[1]/@type='evdev'")
        refused(Self.domain("<input type='passthrough' bus='virtio'><source evdev='/dev/input/event0'/></input>"), naming: "@type='passthrough'")
        refused(Self.domain("<graphics type='sdl' display=':0' xauth='/root/.Xauthority'/>"), naming: "/domain/devices/graphics[1]/@type='sdl'")
        refused(Self.domain("<graphics type='spice'><gl enable='yes' rendernode='/dev/dri/renderD128'/></graphics>"), naming: "@enable='yes'")
        refused(Self.domain("<graphics type='vnc' listen='0.0.0.0'/>"), naming: "/domain/devices/graphics[1]/@listen='0.0.0.0'")
        refused(Self.domain("<audio id='1' type='file'><output file='/etc/x'/></audio>"), naming: "/domain/devices/audio[1]/@type='file'")
        refused(Self.domain("<disk type='network' device='disk'><source protocol='nbd' name='x'/></disk>"), naming: "@type='network'")
        refused(Self.domain("<interface type='user'/>"), naming: "/domain/devices/interface[1]/@type='user'")
        refused(Self.domain("<interface type='ethernet'><target dev='tap0'/></interface>"), naming: "@type='ethernet'")
        refused(Self.domain("<filesystem type='mount'><driver type='virtiofs'/><binary path='/bin/sh'/><source dir='/srv'/><target dir='t'/></filesystem>"),
                naming: "/domain/devices/filesystem[1]/driver/@type='virtiofs'")
        refused(Self.domain("<video><model type='virtio'/><rom file='/root/rom.bin'/></video>"), naming: "/domain/devices/video[1]/rom")
        refused(Self.domain("<rng model='virtio'><backend model='random'>/dev/sda</backend></rng>"), naming: "/domain/devices/rng[1]/backend/text()='/dev/sda'")
        refused(Self.domain("<shmem name='x'/>"), naming: "/domain/devices/shmem is not an element")
        refused(Self.domain("", extra: "<memoryBacking><source type='file'/></memoryBacking>"), naming: "/domain/memoryBacking/source/@type='file'")
        refused(Self.domain("", extra: "<sysinfo type='fwcfg'><entry name='opt/x' file='/root/secret'/></sysinfo>"), naming: "/domain/sysinfo/@type='fwcfg'")
        refused(Self.domain("<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/i/d'/><backingStore type='file'><source file='/root/secret'/></backingStore><target dev='vda'/></disk>"),
                naming: "names a backing chain")
        refused(Self.domain("<disk type='file' device='disk'><source file='/i/d'/><target dev='vda'/></disk>"), naming: "has no <driver type=")
        // A second <devices> carrying a host block device (libvirt reads the first only:
        // the check must not let the second one by).
        refused(Self.domain("") .replacingOccurrences(of: "</domain>", with: "<devices><disk type='block'/></devices></domain>"),
                naming: "/domain/devices[2]: <devices> may appear only once in /domain")
        // The service's metadata, another namespace, a DOCTYPE.
        refused(Self.domain("", extra: "<metadata><mv:controller xmlns:mv='\(DomainXML.namespace)'><mv:overlay>other</mv:overlay></mv:controller></metadata>"),
                naming: "/domain/metadata/mv:controller is the service's own metadata")
        refused(Self.domain("<x:thing xmlns:x='urn:x'/>"), naming: "in the namespace 'urn:x'")
        refused(Self.domain("<qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'/>"), naming: "qemu command-line")
        refused(Self.domain("<hostdev mode='subsystem' type='pci'/>"), naming: "/domain/devices/hostdev (host device passthrough)")
        XCTAssertThrowsError(try XElement.parse("<!DOCTYPE d [<!ENTITY e SYSTEM 'file:///etc/shadow'>]><domain>&e;</domain>")) { error in
            XCTAssertTrue("\(error)".contains("DOCTYPE"), "\(error)")
        }
        refused(Self.domain("", extra: "<currentMemory>x</currentMemory>"), naming: "/domain/currentMemory/text()='x' is not a number")
        // What a review found: an interface whose checked and used sources differ, a channel
        // name that is a relative path, a timezone or keymap naming a file, 9p passthrough.
        refused(Self.domain("<interface type='direct'><source network='eth0' dev='eth1' mode='bridge'/></interface>"),
                naming: "/domain/devices/interface[1]/source/@network='eth0' does not belong to an interface of type 'direct'")
        refused(Self.domain("<interface type='bridge'><source network='br-up' bridge='br-mgmt'/></interface>"), naming: "@network='br-up' does not belong")
        refused(Self.domain("<channel type='unix'><source mode='bind'/><target type='virtio' name='../domain-7-x/org.multiverse.ready.0'/></channel>"),
                naming: "/domain/devices/channel[1]/target/@name='../domain-7-x/org.multiverse.ready.0' is not a name")
        refused(Self.domain("", extra: "<clock offset='timezone' timezone=':/etc/shadow'/>"), naming: "/domain/clock/@offset='timezone' is not accepted")
        refused(Self.domain("<graphics type='vnc' keymap='/root/keys'/>"), naming: "/domain/devices/graphics[1]/@keymap='/root/keys' is not a name")
        refused(Self.domain("<filesystem type='mount' accessmode='passthrough'><source dir='/srv/s'/><target dir='s'/></filesystem>"),
                naming: "/domain/devices/filesystem[1]/@accessmode='passthrough' is not accepted")
        refused(Self.domain("<filesystem type='mount' accessmode='squash'><source dir='/srv/s'/><target dir='s'/></filesystem>"), naming: "@accessmode='squash'")
    }

    func testHostPathsAreCollectedForTheServiceToCheck() throws {
        let xml = Self.domain("""
            <emulator>/usr/bin/qemu-system-x86_64</emulator>
            <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/img/a.qcow2'/><backingStore/><target dev='vda' bus='virtio'/></disk>
            <disk type='file' device='cdrom'><target dev='sda' bus='sata'/><readonly/></disk>
            <filesystem type='mount' accessmode='mapped'><source dir='/srv/share'/><target dir='s'/></filesystem>
            """, os: "<os><type arch='x86_64' machine='pc'>hvm</type><kernel>/boot/vmlinuz</kernel><initrd>/boot/initrd.img</initrd><cmdline>console=ttyS0</cmdline></os>")
        let refs = try DomainAllowlist.check(XElement.parse(xml), allowPassthrough: false)
        XCTAssertEqual(refs.managedDisks.map(\.path), ["/img/a.qcow2"])
        XCTAssertEqual(refs.managedDisks.map(\.format), ["qcow2"])
        XCTAssertEqual(refs.shareDirectories, ["/srv/share"])
        XCTAssertEqual(refs.kernelFiles, ["/boot/vmlinuz", "/boot/initrd.img"])
        XCTAssertEqual(refs.emulators, ["/usr/bin/qemu-system-x86_64"])
        let relative = xml.replacingOccurrences(of: "<kernel>/boot/vmlinuz", with: "<kernel>/boot/../root/k")
        XCTAssertThrowsError(try DomainAllowlist.check(XElement.parse(relative), allowPassthrough: false))
    }

    /// Everything DomainXML.build writes for each built-in profile passes, once the service's
    /// own metadata is taken out (the round trip through libvirt is CallerBoundaryTests').
    func testWhatTheServiceWritesPasses() throws {
        for profile in VMProfile.builtIn {
            var spec = DomainXML.Spec(name: "p", domainType: "qemu", cpuMode: "", profile: profile)
            spec.disks = [("/img/d.qcow2", "qcow2")]
            spec.nics = [NICSpec(source: .network("multiverse"), mac: "52:54:00:00:00:01")]
            let domain = try XElement.parse(DomainXML.build(spec))
            domain.first("metadata")?.removeElements { $0.namespaceURI == DomainXML.namespace }
            XCTAssertNoThrow(try DomainAllowlist.check(domain, allowPassthrough: false), profile.name)
        }
    }

    func testTheReferenceListsEveryElement() {
        let doc = DomainAllowlist.documentation
        XCTAssertTrue(doc.paragraphs.contains("/domain/devices/serial: type (pty); repeats"), doc.paragraphs.joined(separator: "\n"))
        XCTAssertTrue(doc.paragraphs.contains { $0.hasPrefix("/domain/devices/disk/source: file (a managed disk's path)") })
    }
}
