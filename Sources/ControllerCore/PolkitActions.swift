/// The polkit action ids of API version 1 (see `polkit/org.multiverse.controller.policy`).
public enum PolkitAction: String, Sendable, CaseIterable {
    case vmControl = "org.multiverse.controller.vm.control"
    case vmConfigure = "org.multiverse.controller.vm.configure"
    case diskManage = "org.multiverse.controller.disk.manage"
    case diskInspect = "org.multiverse.controller.disk.inspect"
    case diskWrite = "org.multiverse.controller.disk.write"
    case settingsModify = "org.multiverse.controller.settings.modify"
    case jobCancelOther = "org.multiverse.controller.job.cancel-other"
}
