import FoundationEssentials
import HostSystem
import Logging

extension DiskService {
    /// A checked AdoptDisk.
    public struct AdoptPlan: Sendable {
        public let disk: DiskInfo
        public let format: String
        public let force: Bool
        public var details: [String: String] { ["disk": disk.name, "operation": "adopt", "format": format] }

        /// Recording a format writes an attribute, not the image: a reader's lease (beside a
        /// VM, and on a disk others are built on); a writer's when the qcow2 header needs
        /// its backing disk's format written in (``DiskStore/record(_:format:)``).
        static func lease(_ disk: DiskInfo, _ format: String) -> LeaseRequest {
            LeaseRequest(disk.name, format == "qcow2" && disk.backingHeader != nil ? .writer : .reader)
        }
    }

    /// Checks AdoptDisk: an image of the image directory without a format record takes
    /// `format` as its record. The record is never guessed: a "raw" image whose first bytes
    /// are another format's header is refused unless `force` (a guest can write any header
    /// into a raw disk), a "qcow2" one must start with a qcow2 header, and its backing chain
    /// and data file must meet ``DiskChain``'s rules once recorded.
    public func checkAdopt(_ name: String, format: String, force: Bool) async throws -> AdoptPlan? {
        try DiskName.validate(name)
        guard ImageFormatRecord.managed.contains(format) else {
            throw ControllerError.invalidArgs("invalid format \(CallerText.quoted(format)): use raw or qcow2")
        }
        let disk = try await context.anyDisk(name)
        if disk.format == format { return nil }   // nothing changes
        guard disk.format.isEmpty || !ImageFormatRecord.managed.contains(disk.format) else {
            throw ControllerError.invalidState("disk \(name) is already recorded as \(disk.format); a disk's format is never changed")
        }
        try await context.checkLeases([AdoptPlan.lease(disk, format)], for: "adopt disk \(name)")
        for vm in await context.vms.list() {
            if let used = vm.disks.first(where: { $0.source == disk.path }), used.format != format {
                throw ControllerError.invalidArgs("VM \(vm.name) opens disk \(name) as \(CallerText.quoted(used.format)), not \(format)")
            }
        }
        return AdoptPlan(disk: disk, format: format, force: force)
    }

    /// Records the format, after authorization, holding the disk as a writer: the header
    /// checks read the file now.
    public func runAdopt(_ plan: AdoptPlan) async throws -> DiskInfo {
        let (context, name) = (self.context, plan.disk.name)
        let info = try await context.leased([AdoptPlan.lease(plan.disk, plan.format)], label: "an AdoptDisk call",
                                            for: "adopt disk \(name)") {
            // Another AdoptDisk (or the upgrade's records) may have recorded one meanwhile.
            let now = try await context.anyDisk(name)
            guard now.format.isEmpty || !ImageFormatRecord.managed.contains(now.format) else {
                throw ControllerError.invalidState("disk \(name) was recorded as \(now.format) meanwhile; a disk's format is never changed")
            }
        } _: {
            try await adopt(plan)
        }
        await context.publish(nil)
        return info
    }

    private func adopt(_ plan: AdoptPlan) async throws -> DiskInfo {
        let header = ImageHeader.foreignFormat(ofFile: plan.disk.path)
        switch plan.format {
        case "raw":
            if let header, !plan.force {
                throw ControllerError.invalidArgs("""
                    disk \(plan.disk.name) starts with a \(header) header; adopting it as raw needs the option force (only if you \
                    know its contents are a raw disk, e.g. one a guest wrote that header into)
                    """)
            }
        default:
            guard header == "qcow2" else {
                throw ControllerError.invalidArgs("disk \(plan.disk.name) does not start with a qcow2 header\(header.map { " (it looks like \($0))" } ?? "")")
            }
        }
        var info = try await store.record(plan.disk.name, format: plan.format)
        if !info.problems.isEmpty || info.format != plan.format {
            // Leave no half-adopted disk: the record goes again, the problem is the answer.
            let problems = info.problems
            try? await store.unrecord(plan.disk.name)
            throw ControllerError.invalidArgs("disk \(plan.disk.name) cannot be adopted as \(plan.format): \(problems.joined(separator: "; "))")
        }
        info = try await context.disk(plan.disk.name)
        context.logger.notice("adopted disk \(plan.disk.name) as \(plan.format)\(plan.force && header != nil ? " (forced over a \(header!) header)" : "")")
        return info
    }

    /// Records the format of unrecorded disk `name` from what the service knew before
    /// records existed (an upgrade): `known` (the VMs' `<driver type>`), else the formats in
    /// its backups' manifests. Sources that disagree, or a qcow2 claim for an image without
    /// a qcow2 header, leave it unadopted and say so; a raw one whose bytes look like
    /// another format is recorded raw (what it was opened as) with a warning.
    public func recordKnownFormat(_ name: String, known: [(format: String, from: String)]) async {
        var candidates = known
        if candidates.isEmpty {
            candidates = await context.backups.list(disk: name).map { ($0.format, "backup \($0.id)") }
        }
        guard let first = candidates.first else {
            context.logger.warning("disk \(name) has no recorded format and no VM or backup names one: it stays unusable until adopted (Manager.AdoptDisk)")
            return
        }
        let formats = Set(candidates.map(\.format))
        guard formats.count == 1, ImageFormatRecord.managed.contains(first.format) else {
            let said = candidates.map { "\($0.from): \(CallerText.quoted($0.format))" }.joined(separator: ", ")
            context.logger.warning("disk \(name) has no recorded format and what the service knew disagrees or is not raw or qcow2 (\(said)): it stays unadopted")
            return
        }
        guard let disk = await store.disk(named: name) else { return }
        let header = ImageHeader.foreignFormat(ofFile: disk.path)
        if first.format == "qcow2" && header != "qcow2" {
            context.logger.warning("disk \(name): \(first.from) opens it as qcow2 but it has no qcow2 header: it stays unadopted")
            return
        }
        if first.format == "raw", let header {
            context.logger.warning("disk \(name) is recorded raw from \(first.from), but its first bytes are a \(header) header (written by a guest?); it stays raw")
        }
        do {
            // Held like an AdoptDisk; one may have recorded it meanwhile.
            let info = try await context.leased([AdoptPlan.lease(disk, first.format)], label: "the upgrade's format records",
                                                for: "record the format of disk \(name)", afterVMs: false) {
                guard let now = await store.disk(named: name), now.format.isEmpty else {
                    throw ControllerError.invalidState("disk \(name) was recorded meanwhile")
                }
            } _: {
                try await store.record(name, format: first.format)
            }
            context.logger.notice("recorded format \(first.format) of disk \(name) from \(first.from)\(info.problems.isEmpty ? "" : "; its problems: " + info.problems.joined(separator: "; "))")
            await context.publish(nil)
        } catch {
            context.logger.error("cannot record the format of disk \(name): \(error)")
        }
    }
}
