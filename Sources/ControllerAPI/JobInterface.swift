import SDBus

/// `org.multiverse.Controller.Job`, one object per running or recently finished job.
public enum JobInterface {
    public static let name = ControllerNames.interfacePrefix + "Job"
    typealias A = Arg

    public static let cancel = APIMethod("Cancel", in: [A.options], action: .jobCancelOther,
        doc: """
            Cancels the job (another uid's job needs job.cancel-other; InvalidState past the commit point).\n\nCancelling \
            one's own job needs no authorization. A job that has already ended is InvalidState too.
            """)
    public static let completed = APISignal("Completed", [A.a("success", "b"), A.a("message", "s")],
        doc: "Sent once when the job ends: success, and the message OPERATION succeeded or the error.")

    public static let declaration = APIInterface(name,
        methods: [cancel],
        properties: [
            APIProperty("Operation", "s", change: .const, doc: "What the job does: the method that started it (Resize, Clone, StartAll, ...) or AutoGrow."),
            APIProperty("Target", "o", change: .const, doc: "The object it works on: a disk, a VM, or the root object (StartAll)."),
            APIProperty("StartedByUID", "u", change: .const, doc: "Who started it (0 for the service's own jobs: AutoGrow, StartAll at start-up)."),
            APIProperty("StartTime", "t", change: .const, doc: "When it started (seconds since the epoch)."),
            APIProperty("State", "s", doc: "running, succeeded, failed or cancelled."),
            APIProperty("Progress", "d", doc: "0 to 1 when ProgressValid."),
            APIProperty("ProgressValid", "b", doc: "Whether Progress means something."),
            APIProperty("Error", "s", doc: "Why it failed."),
            APIProperty("Status", "s", doc: """
                What it is doing now, one line for a person (StartAll: which VM it starts or waits for, and why); empty when \
                the job says nothing.
                """),
            APIProperty("Result", "a{sv}", doc: "What it produced; each method that starts a job lists its keys."),
        ],
        signals: [completed])
}
