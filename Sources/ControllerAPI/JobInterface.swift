import SDBus

/// `org.multiverse.Controller.Job`, one object per running or recently finished job.
public enum JobInterface {
    public static let name = ControllerNames.interfacePrefix + "Job"
    typealias A = Arg

    public static let cancel = APIMethod("Cancel", in: [A.options], action: .jobCancelOther,
        doc: "Cancels the job (another uid's job needs job.cancel-other; InvalidState past the commit point).")
    public static let completed = APISignal("Completed", [A.a("success", "b"), A.a("message", "s")],
        doc: "Sent once when the job ends.")

    public static let declaration = APIInterface(name,
        methods: [cancel],
        properties: [
            APIProperty("Operation", "s", change: .const, doc: "What the job does."),
            APIProperty("Target", "o", change: .const, doc: "The object it works on."),
            APIProperty("StartedByUID", "u", change: .const, doc: "Who started it."),
            APIProperty("StartTime", "t", change: .const, doc: "When it started."),
            APIProperty("State", "s", doc: "running, succeeded, failed or cancelled."),
            APIProperty("Progress", "d", doc: "0 to 1 when ProgressValid."),
            APIProperty("ProgressValid", "b", doc: "Whether Progress means something."),
            APIProperty("Error", "s", doc: "Why it failed."),
            APIProperty("Result", "a{sv}", doc: "What it produced."),
        ],
        signals: [completed])
}
