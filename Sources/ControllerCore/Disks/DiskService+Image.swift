import FoundationEssentials

/// The operations that change an image as a whole or look inside it: Resize, Format,
/// Inspect and the files; the offline resize AutoGrow shares.
extension DiskService {
    // MARK: resize

    /// A checked Resize: offline (on a copy, with the filesystem) or live (a running VM uses
    /// the disk: the image only, grow only).
    public struct ResizePlan: Sendable {
        public let disk: DiskInfo
        public let size: UInt64
        public let filesystem: Bool
        /// The VM using the disk and its target there, for a live grow.
        public let live: (vm: VMInfo, target: String)?
        public var details: [String: String] { ["disk": disk.name, "operation": "resize", "size": String(size)] }
        /// Offline: the disk alone; live: beside the running VM's lease (which must still be there).
        var lease: LeaseRequest { LeaseRequest(disk.name, live == nil ? .writer : .liveWriter) }
        var what: String { "resize disk \(disk.name)" }
    }

    public func checkResize(_ name: String, to size: UInt64, shrink allowShrink: Bool, filesystem: Bool) async throws -> ResizePlan {
        let disk = try await context.disk(name)
        guard size > 0, size <= context.maxSize else {
            throw ControllerError.invalidArgs("invalid size \(size): must be between 1 and \(context.maxSize) bytes")
        }
        guard size % 512 == 0 else { throw ControllerError.invalidArgs("invalid size \(size): must be a multiple of 512 bytes") }
        guard size != disk.virtualSize else { throw ControllerError.invalidArgs("disk \(name) already has a virtual size of \(size) bytes") }
        let shrink = size < disk.virtualSize
        if shrink && !allowShrink {
            throw ControllerError.invalidArgs("size \(size) is below disk \(name)'s \(disk.virtualSize) bytes: pass shrink=true to shrink")
        }
        let user = await context.activeUser(of: disk)
        if let user, shrink {
            throw ControllerError.busy("cannot shrink disk \(name): VM \(user.vm.name) is using it (\(user.vm.state.rawValue))")
        }
        let plan = ResizePlan(disk: disk, size: size, filesystem: filesystem, live: user)
        try await context.checkLeases([plan.lease], for: plan.what)
        return plan
    }

    public func runResize(_ plan: ResizePlan, uid: UInt32) async throws -> JobSnapshot {
        let context = self.context
        return try await context.leasedJob("Resize", target: .disk(plan.disk.name), leases: [plan.lease], uid: uid, for: plan.what) {
            try await context.requireUnchanged(plan.disk, for: plan.what)
        } _: { job in
            guard let live = plan.live else {
                return try await context.resizeOffline(plan.disk.name, to: plan.size, filesystem: plan.filesystem, job: job)
            }
            // The image only, through libvirt's block resize (qemu grows it under the
            // guest); the guest grows its own partition and filesystem.
            job.progress(nil)
            job.commit()
            try await context.vms.blockResize(live.vm.uuid, target: live.target, bytes: plan.size)
            await context.publish(plan.disk.name)
            context.logger.notice("grew disk \(plan.disk.name) of running VM \(live.vm.name) to \(plan.size) bytes (live, image only)")
            return ["old_size": .uint64(plan.disk.virtualSize), "new_size": .uint64(plan.size), "filesystem_grown": .bool(false),
                    "filesystem_shrunk": .bool(false), "filesystem": .string(""), "live": .bool(true),
                    "note": .string("the disk is in use by running VM \(live.vm.name): the image was grown live; the guest grows its partition and filesystem")]
        }
    }

    // MARK: format

    /// A checked Format.
    public struct FormatPlan: Sendable {
        public let disk: DiskInfo
        public let request: FormatRequest
        public var details: [String: String] { ["disk": disk.name, "operation": "format", "fstype": request.fstype] }
    }

    public func checkFormat(_ name: String, _ request: FormatRequest) async throws -> FormatPlan {
        let disk = try await context.disk(name)
        try await context.checkLeases([LeaseRequest(name, .writer)], for: "format disk \(name)")
        return FormatPlan(disk: disk, request: request)
    }

    public func runFormat(_ plan: FormatPlan, uid: UInt32) async throws -> JobSnapshot {
        let context = self.context
        let (disk, request, name) = (plan.disk, plan.request, plan.disk.name)
        let what = "format disk \(name)"
        return try await context.leasedJob("Format", target: .disk(name), leases: [LeaseRequest(name, .writer)], uid: uid, for: what) {
            try await context.requireUnchanged(disk, for: what)
        } _: { job in
            let appliances = context.guests.cache
            await appliances.release(disk.path)
            let start: DiskStore.TransformStart = disk.snapshots.isEmpty ? .fresh : .copy
            let (device, _) = try await context.store.transform(name, start: start, progress: { job.progress($0) }, commit: { job.commit() }) { temporary, d in
                try await request.apply(temporary, format: d.format, disk: name, appliances: appliances) { job.progress($0) }
            }
            await appliances.release(disk.path)
            await context.forgetUsage(name, inspection: true)
            await context.publish(name)
            context.logger.notice("formatted disk \(name): \(request.partitionTable) \(request.fstype) on \(device)")
            return ["fstype": .string(request.fstype), "partition_table": .string(request.partitionTable),
                    "device": .string(device), "label": .string(request.label ?? "")]
        }
    }

    // MARK: inside the image

    /// A checked Inspect, ListFiles or ReadFile (reading needs no other check).
    public struct ReadPlan: Sendable {
        public let disk: DiskInfo
        public let operation: String
        /// The normalized guest path (empty for Inspect).
        public let path: String
        public var details: [String: String] {
            var d = ["disk": disk.name, "operation": operation]
            if !path.isEmpty { d["path"] = path }
            return d
        }
        /// Reads through a read-only appliance are safe beside a running VM.
        var lease: LeaseRequest { LeaseRequest(disk.name, .reader) }
        var what: String {
            switch operation {
            case "list-files": "list \(path) in disk \(disk.name)"
            case "read-file": "read \(path) in disk \(disk.name)"
            default: "inspect disk \(disk.name)"
            }
        }
    }

    public func checkInspect(_ name: String) async throws -> ReadPlan {
        let plan = ReadPlan(disk: try await context.disk(name), operation: "inspect", path: "")
        try await context.checkLeases([plan.lease], for: plan.what)
        return plan
    }

    public func runInspect(_ plan: ReadPlan, uid: UInt32) async throws -> JobSnapshot {
        let (context, policies) = (self.context, self.policies)
        let disk = plan.disk
        // What the sample asks of AutoGrow waits until the job lets go of the disk.
        return try await context.leasedJob("Inspect", target: .disk(disk.name), leases: [plan.lease], uid: uid, for: plan.what,
                                           afterward: { await policies.growIfPending(disk.name) }) {
            try await context.requireUnchanged(disk, for: plan.what)
        } _: { job in
            job.progress(nil)
            let report = try await withTaskCancellationHandler {
                try await context.guests.inspect(disk, readonly: true)
            } onCancel: {
                Task { await context.guests.cache.kill(disk.path) }
            }
            try Task.checkCancellation()
            let inspected = await policies.inspected(disk.name, report)
            // What the guest's image holds stays out of the Result property, which every
            // bus client reads: GetInspection serves it to callers allowed disk.inspect.
            return ["inspected": .uint64(inspected)]
        }
    }

    /// Checks a GetInspection (`inspection`) or GetFilesystemUsage: values read from inside
    /// the image, for callers allowed `disk.inspect`.
    public func checkGuestValues(_ name: String, inspection: Bool) async throws -> ReadPlan {
        ReadPlan(disk: try await context.disk(name), operation: inspection ? "get-inspection" : "get-filesystem-usage", path: "")
    }

    /// The last Inspect's findings (empty when the disk was never inspected, or formatted since).
    public func runGetInspection(_ plan: ReadPlan) async -> [String: JobValue] {
        await policies.records.record(plan.disk.name).inspection?.values ?? [:]
    }

    /// The last usage sample and when it was taken (0 and no rows: none yet).
    public func runGetFilesystemUsage(_ plan: ReadPlan) async -> (sampled: UInt64, usage: [FilesystemUsage]) {
        let record = await policies.records.record(plan.disk.name)
        return (record.sampled, record.usage)
    }

    /// Checks a ListFiles (`listing`) or ReadFile of `guestPath`.
    public func checkRead(_ name: String, _ guestPath: String, listing: Bool) async throws -> ReadPlan {
        let disk = try await context.disk(name)
        let path = try GuestPath.normalize(guestPath)
        let plan = ReadPlan(disk: disk, operation: listing ? "list-files" : "read-file", path: path)
        try await context.checkLeases([plan.lease], for: plan.what)
        return plan
    }

    public func runListFiles(_ plan: ReadPlan, page: ListingPage = ListingPage()) async throws -> [GuestFileEntry] {
        let context = self.context
        let entries = try await context.leased([plan.lease], label: "a ListFiles call", for: plan.what) {
            try await context.requireUnchanged(plan.disk, for: plan.what)
        } _: {
            try await context.guests.listFiles(plan.disk, plan.path, readonly: true)
        }
        return try page.apply(to: entries)
    }

    public func runReadFile(_ plan: ReadPlan) async throws -> [UInt8] {
        let context = self.context
        return try await context.leased([plan.lease], label: "a ReadFile call", for: plan.what) {
            try await context.requireUnchanged(plan.disk, for: plan.what)
        } _: {
            try await context.guests.readFile(plan.disk, plan.path, readonly: true)
        }
    }

    /// A checked WriteFile.
    public struct WritePlan: Sendable {
        public let disk: DiskInfo
        public let path: String
        public let content: [UInt8]
        public let mode: UInt32?
        public var details: [String: String] { ["disk": disk.name, "operation": "write-file", "path": path] }
        static func what(_ path: String, _ disk: String) -> String { "write \(path) in disk \(disk)" }
    }

    public func checkWrite(_ name: String, _ guestPath: String, content: [UInt8], mode: UInt32?) async throws -> WritePlan {
        let disk = try await context.disk(name)
        let path = try GuestPath.normalize(guestPath)
        guard content.count <= GuestImages.maxFileBytes else {
            throw ControllerError.limitsExceeded("WriteFile: \(content.count) bytes is more than \(GuestImages.maxFileBytes)")
        }
        if let mode, mode > 0o7777 { throw ControllerError.invalidArgs("invalid mode \(String(mode, radix: 8)): use permission bits up to 07777") }
        if path == "/" { throw ControllerError.invalidArgs("guest path / is a directory") }
        try await context.checkLeases([LeaseRequest(name, .writer)], for: WritePlan.what(path, name))
        return WritePlan(disk: disk, path: path, content: content, mode: mode)
    }

    public func runWrite(_ plan: WritePlan) async throws {
        let context = self.context
        let what = WritePlan.what(plan.path, plan.disk.name)
        try await context.leased([LeaseRequest(plan.disk.name, .writer)], label: "a WriteFile call", for: what) {
            try await context.requireUnchanged(plan.disk, for: what)
        } _: {
            try await context.guests.writeFile(plan.disk, plan.path, content: plan.content, mode: plan.mode)
        }
        context.logger.notice("wrote \(plan.content.count) bytes to \(plan.path) in disk \(plan.disk.name)")
        await context.publish(plan.disk.name)
    }
}

extension DiskContext {
    /// Resize of a disk no active VM uses: on a private copy, renamed over the disk at the
    /// end (the commit point); the image, the last partition and its filesystem.
    func resizeOffline(_ name: String, to size: UInt64, filesystem: Bool, job: Job) async throws -> [String: JobValue] {
        let disk = try await disk(name)
        await guests.cache.release(disk.path)
        let resizer = DiskResizer(qemuImg: qemuImg, appliances: guests.cache)
        let progress: @Sendable (Double) -> Void = { job.progress(0.4 + 0.55 * $0) }
        let (outcome, info) = try await store.transform(name, start: .copy, progress: { job.progress($0) }, commit: { job.commit() }) { temporary, d in
            if size < d.virtualSize {
                return try await resizer.shrink(temporary, format: d.format, disk: name, from: d.virtualSize, to: size, progress: progress)
            }
            return try await resizer.grow(temporary, format: d.format, disk: name, from: d.virtualSize, to: size,
                                          filesystem: filesystem, progress: progress)
        }
        await guests.cache.release(disk.path)
        if outcome.filesystemGrown || outcome.filesystemShrunk { await forgetUsage(name) }
        await publish(name)
        logger.notice("""
            resized disk \(name) from \(outcome.oldSize) to \(info.virtualSize) \
            bytes\(outcome.filesystem.isEmpty ? "" : " (\(outcome.filesystem))")\(outcome.note.isEmpty ? "" : ": \(outcome.note)")
            """)
        return ["old_size": .uint64(outcome.oldSize), "new_size": .uint64(info.virtualSize),
                "filesystem_grown": .bool(outcome.filesystemGrown), "filesystem_shrunk": .bool(outcome.filesystemShrunk),
                "filesystem": .string(outcome.filesystem), "note": .string(outcome.note), "live": .bool(false)]
    }
}
