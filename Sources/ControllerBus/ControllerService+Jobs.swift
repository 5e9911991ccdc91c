import ControllerCore
import SDBus

/// Job objects (`/org/multiverse/Controller/job/N`), ListJobs and StartAll.
extension ControllerService {
    /// Mirrors the job list on the bus.
    public func jobChanged(_ change: JobChange) async {
        switch change {
        case .added(let job):
            let id = job.id
            do {
                try await bus.export(path: ObjectPaths.job(id), interfaces: [
                    ExportedInterface(Interfaces.job, properties: Self.jobProperties(job),
                                      handler: { [self] call in try await handleJob(id, call) }),
                ], announce: true)
            } catch {
                logger.error("cannot export job \(id): \(error)")
            }
        case .updated(let job):
            await bus.setProperties(path: ObjectPaths.job(job.id), interface: Interfaces.job.name,
                                    ["Progress": .double(job.progress), "ProgressValid": .boolean(job.progressValid)])
        case .finished(let job):
            var props = Self.jobProperties(job)
            for key in ["Operation", "Target", "StartedByUID", "StartTime"] { props[key] = nil }
            await bus.setProperties(path: ObjectPaths.job(job.id), interface: Interfaces.job.name, props)
            let success = job.state == "succeeded"
            try? await bus.emitSignal(path: ObjectPaths.job(job.id), interface: Interfaces.job.name, member: "Completed",
                                      [.boolean(success), .string(success ? "\(job.operation) succeeded" : job.error)])
        case .removed(let id):
            await bus.unexport(path: ObjectPaths.job(id))
        }
    }

    static func jobProperties(_ job: JobSnapshot) -> [String: DBusValue] {
        var result: [String: DBusValue] = [:]
        for (key, value) in job.result {
            switch value {
            case .string(let s): result[key] = .string(s)
            case .strings(let a): result[key] = .strings(a)
            case .bool(let b): result[key] = .boolean(b)
            case .uint64(let n): result[key] = .uint64(n)
            case .double(let d): result[key] = .double(d)
            case .usage(let rows): result[key] = Self.usageValue(rows)
            case .pairs(let rows): result[key] = .array(elementSignature: "(ss)", rows.map { .structure($0.prefix(2).map { .string($0) }) })
            }
        }
        return [
            "Operation": .string(job.operation),
            "Target": .objectPath(job.target),
            "StartedByUID": .uint32(job.startedByUID),
            "StartTime": .uint64(job.startTime),
            "State": .string(job.state),
            "Progress": .double(job.progress),
            "ProgressValid": .boolean(job.progressValid),
            "Error": .string(job.error),
            "Result": .vardict(result),
        ]
    }

    func handleJob(_ id: UInt64, _ call: MethodCall) async throws -> [DBusValue] {
        switch call.member {
        case "Cancel":
            try Arguments(call: call).options(0).finish()
            guard let job = await jobs.job(id)?.snapshot else { throw ControllerError.invalidArgs("job \(id) no longer exists") }
            guard job.state == "running" else { throw ControllerError.invalidState("job \(id) has already \(job.state)") }
            guard !job.committed else { throw ControllerError.invalidState("job \(id) is past its commit point and can no longer be cancelled") }
            let caller = try await callers.caller(for: call)
            if caller.uid != job.startedByUID {
                try await authorizer.authorize(caller, .jobCancelOther, details: ["operation": job.operation, "job": String(id)])
            }
            try await jobs.cancel(id)
            return []
        default:
            throw ControllerError.notSupported("\(call.member) is not implemented")
        }
    }

    /// Manager.StartAll and ListJobs.
    func handleManagerJobs(_ call: MethodCall) async throws -> [DBusValue]? {
        let args = Arguments(call: call)
        switch call.member {
        case "ListJobs":
            try args.options(0).finish()
            return [.objectPaths(await jobs.list().map { ObjectPaths.job($0.id) })]
        case "StartAll":
            try args.options(0).finish()
            let caller = try await callers.caller(for: call)
            try await authorizer.authorize(caller, .vmControl, details: ["operation": "start-all"])
            let job = try await startAllJob(uid: caller.uid)
            return [.objectPath(ObjectPaths.job(job.id))]
        default:
            return nil
        }
    }

    /// Starts the StartAll job (also run once at start-up, as uid 0).
    public func startAllJob(uid: UInt32) async throws -> JobSnapshot {
        let vms = self.vms
        let timeout = Duration.seconds(vms.config.startTimeoutSeconds)
        return try await jobs.start(operation: "StartAll", target: ObjectPaths.root, uid: uid) { job in
            try await vms.startAll(job: job, timeout: timeout)
        }
    }
}
