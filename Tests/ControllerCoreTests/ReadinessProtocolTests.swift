@testable import HostSystem
@testable import Readiness
@testable import ControllerCore
import XCTest

/// The readiness channel's decoder and rate limit against hostile guest input, and the
/// channel in the domains the service writes.
final class ReadinessProtocolTests: XCTestCase {
    func testLinesInSdNotifyVocabulary() {
        var d = ReadinessDecoder()
        XCTAssertEqual(d.feed(Array("READY=1\nSTATUS=multi-user.target reached\r\nSTOPPING=1\nERRNO=5\n".utf8)),
                       [.ready, .status("multi-user.target reached"), .stopping, .errno(5)])
        // Split across reads, and values outside the vocabulary ignored.
        XCTAssertEqual(d.feed(Array("REA".utf8)), [])
        XCTAssertEqual(d.feed(Array("DY=1\nREADY=0\nREADY=yes\nERRNO=-1\nERRNO=99999999\n\n".utf8)), [.ready])
        XCTAssertEqual(d.feed(Array("MAINPID=1\nno equals sign\n".utf8)), [.unknownKey("MAINPID"), .unknownKey("no equals sign")])
    }

    func testStatusLosesControlCharactersAndInvalidUTF8AndIsCut() {
        var d = ReadinessDecoder()
        let hostile: [UInt8] = Array("STATUS=a\u{1B}[31mb\u{7F}c\u{9B}d".utf8) + [0xFF, 0xFE] + Array("é<script>\n".utf8)
        XCTAssertEqual(d.feed(hostile), [.status("a[31mbcdé<script>")])
        let long = d.feed(Array(("STATUS=" + String(repeating: "x", count: 900) + "\n").utf8))
        XCTAssertEqual(long, [.status(String(repeating: "x", count: ReadinessDecoder.maxStatusCharacters))])
    }

    func testAMegabyteLineIsDroppedWithoutBeingBuffered() {
        var d = ReadinessDecoder()
        var messages: [ReadinessMessage] = []
        let chunk = [UInt8](repeating: UInt8(ascii: "R"), count: 64 * 1024)
        for _ in 0..<16 { messages += d.feed(chunk) }   // 1 MiB without a newline
        messages += d.feed(Array("EADY=1\nREADY=1\n".utf8))
        XCTAssertEqual(messages, [.oversizedLine, .ready], "the long line is dropped whole; the next line counts")
    }

    func testRateLimitDropsAFloodAndRecovers() {
        var limit = ReadinessRateLimit(perSecond: 10, burst: 5)
        let start = ContinuousClock.now
        let allowed = (0..<100).filter { _ in limit.allow(at: start) }.count
        XCTAssertEqual(allowed, 5)
        XCTAssertEqual(limit.dropped, 95)
        XCTAssertTrue(limit.allow(at: start + .milliseconds(150)), "one token back after 0.1 s")
        XCTAssertFalse(limit.allow(at: start + .milliseconds(160)))
    }

    func testDefinedDomainsCarryTheChannelAndCallerXMLMayNotClaimIt() throws {
        let spec = DomainXML.Spec(name: "r", domainType: "test", cpuMode: "", profile: VMProfile.builtIn[0])
        let channels = try XElement.parse(DomainXML.build(spec)).first("devices")!.elements("channel")
        XCTAssertEqual(channels.count, 1)
        XCTAssertEqual(channels.first?.attribute("type"), "unix")
        XCTAssertEqual(channels.first?.first("source")?.attribute("mode"), "bind")
        XCTAssertNil(channels.first?.first("source")?.attribute("path"), "libvirt picks the socket path")
        XCTAssertEqual(channels.first?.first("target")?.attribute("name"), "org.multiverse.ready.0")
        let foreign = """
            <domain type='test'><name>f</name><memory>65536</memory><os><type>hvm</type></os><devices>
            <channel type='unix'><source mode='bind'/>
            <target type='virtio' name='org.multiverse.ready.0'/></channel></devices></domain>
            """
        // The readiness channel as the service writes it passes (the service replaces it);
        // another port name of the service's does not.
        XCTAssertNoThrow(try DomainAllowlist.check(XElement.parse(foreign), allowPassthrough: false))
        let reserved = foreign.replacingOccurrences(of: "org.multiverse.ready.0'/>", with: "org.multiverse.other.0'/>")
        XCTAssertThrowsError(try DomainAllowlist.check(XElement.parse(reserved), allowPassthrough: true)) { error in
            XCTAssertTrue("\(error)".contains("'org.multiverse.other.0'"), "\(error)")
        }
        let agent = foreign.replacingOccurrences(of: "org.multiverse.ready.0'/>", with: "org.qemu.guest_agent.0'/>")
        XCTAssertNoThrow(try DomainAllowlist.check(XElement.parse(agent), allowPassthrough: false))
        // A socket path of the caller's choosing (another VM's channel) is refused, named.
        let placed = agent.replacingOccurrences(of: "<source mode='bind'/>",
                                                with: "<source mode='bind' path='/var/lib/libvirt/qemu/channel/target/domain-1-router/org.multiverse.ready.0'/>")
        XCTAssertThrowsError(try DomainAllowlist.check(XElement.parse(placed), allowPassthrough: true)) { error in
            XCTAssertTrue("\(error)".contains("/domain/devices/channel[1]/source/@path="), "\(error)")
        }
    }
}

/// The per-boot noise filter: a guest flooding distinct keys, long lines or ERRNO= changes
/// gets a bounded number of messages through, and the filter's memory stays bounded.
final class ReadinessNoiseFilterTests: XCTestCase {
    func testAFloodOfDistinctKeysIsBoundedAndSaidOnce() {
        var filter = ReadinessNoiseFilter()
        let now = ContinuousClock.now
        var passed: [ReadinessMessage] = []
        for n in 0..<100_000 {
            if let m = filter.admit(.unknownKey("K\(n)"), at: now) { passed.append(m) }
            if let m = filter.admit(.oversizedLine, at: now) { passed.append(m) }
        }
        XCTAssertEqual(passed.count, ReadinessNoiseFilter.maxUnknownKeys + 2)
        XCTAssertEqual(passed.filter { $0 == .unknownKeysCapped }.count, 1)
        XCTAssertEqual(passed.filter { $0 == .oversizedLine }.count, 1)
        XCTAssertEqual(filter.unknownKeys.count, ReadinessNoiseFilter.maxUnknownKeys)
        // What matters still passes, however much noise came before.
        XCTAssertEqual(filter.admit(.ready, at: now), .ready)
        XCTAssertEqual(filter.admit(.status("up"), at: now), .status("up"))
        XCTAssertEqual(filter.admit(.stopping, at: now), .stopping)
    }

    func testErrnoChangesAreRateLimited() {
        var filter = ReadinessNoiseFilter()
        let start = ContinuousClock.now
        XCTAssertNil(filter.admit(.errno(5), at: start).flatMap { _ in filter.admit(.errno(5), at: start) }, "a repeated value passes once")
        var passed = 1
        for n in 0..<1000 where filter.admit(.errno(Int32(n % 2 == 0 ? 7 : 8)), at: start) != nil { passed += 1 }
        XCTAssertEqual(passed, Int(ReadinessNoiseFilter.errnoBurst))
        XCTAssertEqual(filter.admit(.errno(9), at: start + .seconds(ReadinessNoiseFilter.errnoIntervalSeconds)), .errno(9))
    }
}
