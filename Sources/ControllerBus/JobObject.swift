import ControllerAPI
import ControllerCore
import SDBus

/// `org.multiverse.Controller.Job` at `/org/multiverse/Controller/job/N`.
struct JobObject: Sendable {
    let id: UInt64
    let context: BusContext

    static let bindings: [MethodBinding<JobObject>] = [
        .init(JobInterface.cancel) { try await $0.cancel($1) },
    ]

    func cancel(_ call: BusCall) async throws -> [DBusValue] {
        try call.options().finish()
        let job = try await context.jobs.checkCancel(id)
        let caller = try await context.caller(call)
        // One's own job needs no authorization; another uid's needs job.cancel-other.
        if caller.uid != job.startedByUID {
            try await context.authorize(call, ["operation": job.operation, "job": String(id)])
        }
        try await context.jobs.cancel(id)
        return []
    }

    /// Mirrors the job list on the bus.
    static func mirror(_ change: JobChange, context: BusContext, handlers: [String: MethodHandler]) async {
        let bus = context.bus
        switch change {
        case .added(let job):
            do {
                try await bus.export(path: ObjectPaths.job(job.id), interfaces: [
                    JobInterface.declaration.exported(properties: properties(job), handlers: handlers),
                ], announce: true)
            } catch {
                context.logger.error("cannot export job \(job.id): \(error)")
            }
        case .updated(let job):
            await bus.setProperties(path: ObjectPaths.job(job.id), interface: JobInterface.name,
                                    ["Progress": .double(job.progress), "ProgressValid": .boolean(job.progressValid),
                                     "Status": .string(job.status)])
        case .finished(let job):
            var props = properties(job)
            for key in ["Operation", "Target", "StartedByUID", "StartTime"] { props[key] = nil }
            await bus.setProperties(path: ObjectPaths.job(job.id), interface: JobInterface.name, props)
            let success = job.state == "succeeded"
            try? await bus.emitSignal(path: ObjectPaths.job(job.id), interface: JobInterface.name, member: JobInterface.completed.name,
                                      [.boolean(success), .string(success ? "\(job.operation) succeeded" : job.error)])
        case .removed(let id):
            await bus.unexport(path: ObjectPaths.job(id))
        }
    }

    static func path(of target: JobTarget) -> String {
        switch target {
        case .service: return ObjectPaths.root
        case .disk(let name): return ObjectPaths.disk(name)
        case .vm(let uuid): return ObjectPaths.vm(uuid)
        }
    }

    static func properties(_ job: JobSnapshot) -> [String: DBusValue] {
        return [
            "Operation": .string(job.operation),
            "Target": .objectPath(path(of: job.target)),
            "StartedByUID": .uint32(job.startedByUID),
            "StartTime": .uint64(job.startTime),
            "State": .string(job.state),
            "Progress": .double(job.progress),
            "ProgressValid": .boolean(job.progressValid),
            "Error": .string(job.error),
            "Status": .string(job.status),
            "Result": .result(job.result),
        ]
    }
}
