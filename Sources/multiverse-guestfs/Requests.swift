import Guestfs

extension Appliance {
    /// Runs the call a request names with the arguments that follow it, writing its results
    /// in the order the daemon's ``GuestfsSession`` reads them.
    func answer(_ call: GuestfsCall, _ r: inout WireReader, _ w: inout WireWriter) throws {
        switch call {
        case .addDrive:
            let socket = try r.string(), name = try r.string(), readonly = try r.bool()
            try addDrive(socket: socket, name: name, readonly: readonly)
        case .launch: w.int(try launch())
        case .shutdown: shutdown()
        case .sync: try sync()
        case .listDevices: w.strings(try listDevices())
        case .listFilesystems: w.strings(try listFilesystems().flatMap { [$0.device, $0.type] })
        case .partList:
            let list = try partList(try r.string())
            w.int(list.count)
            for p in list { p.write(to: &w) }
        case .partGetParttype: w.string(try partGetParttype(try r.string()))
        case .partDisk:
            let device = try r.string(), type = try r.string()
            try partDisk(device, type: type)
        case .partExpandGPT: try partExpandGPT(try r.string())
        case .partResize:
            let device = try r.string(), number = try r.int32(), end = try r.int()
            try partResize(device, number: number, endSector: end)
        case .partShrink:
            let device = try r.string(), part = try Partition(from: &r), table = try r.string()
            let end = try r.int(), sectorSize = try r.uint64()
            w.int(try partShrink(device, part, table: table, endSector: end, sectorSize: sectorSize))
        case .blockdevSize: w.int(try blockdevSize(try r.string()))
        case .blockdevSectorSize: w.int(try blockdevSectorSize(try r.string()))
        case .vfsType: w.string(try vfsType(try r.string()))
        case .vfsMinimumSize: w.int(try vfsMinimumSize(try r.string()))
        case .mkfs:
            let type = try r.string(), device = try r.string(), hasLabel = try r.bool(), label = try r.string()
            try mkfs(type, device: device, label: hasLabel ? label : nil)
        case .e2fsckForce: try e2fsckForce(try r.string())
        case .resize2fs: try resize2fs(try r.string())
        case .resize2fsSize:
            let device = try r.string(), size = try r.uint64()
            try resize2fs(device, size: size)
        case .xfsGrow: try xfsGrow(try r.string())
        case .btrfsResize:
            let mountpoint = try r.string(), hasSize = try r.bool(), size = try r.uint64()
            try btrfsResize(mountpoint, size: hasSize ? size : nil)
        case .inspectOS: w.strings(try inspectOS())
        case .inspectInfo:
            let info = try inspectInfo(try r.string())
            w.strings([info.type, info.distro, info.productName, info.hostname])
            w.int(info.majorVersion)
            w.int(info.minorVersion)
        case .inspectMountpoints: w.strings(try inspectMountpoints(try r.string()).flatMap { [$0.mountpoint, $0.device] })
        case .mount:
            let device = try r.string(), mountpoint = try r.string(), readonly = try r.bool()
            try mount(device, at: mountpoint, readonly: readonly)
        case .umountAll: try umountAll()
        case .mounts: w.strings(try mounts().flatMap { [$0.device, $0.mountpoint] })
        case .statvfs:
            let s = try statvfs(try r.string())
            w.int(s.size); w.int(s.free); w.int(s.available)
        case .lstat: try lstat(try r.string()).write(to: &w)
        case .realpath: w.string(try realpath(try r.string()))
        case .ls: w.strings(try ls(try r.string()))
        case .lstatList:
            let directory = try r.string(), names = try r.strings()
            let list = try lstatList(directory, names: names)
            w.int(list.count)
            for s in list { s.write(to: &w) }
        case .readlinkList:
            let directory = try r.string(), names = try r.strings()
            w.strings(try readlinkList(directory, names: names))
        case .pread:
            let path = try r.string(), count = try r.int(), offset = try r.int()
            w.bytes(try pread(path, count: Int(min(max(count, 0), 2 << 20)), offset: offset))
        case .write:
            let path = try r.string(), bytes = try r.bytes()
            try write(path, bytes[...])
        case .writeAppend:
            let path = try r.string(), bytes = try r.bytes()
            try writeAppend(path, bytes[...])
        case .rename:
            let from = try r.string(), to = try r.string()
            try rename(from, to: to)
        case .rm: try rm(try r.string())
        case .chmod:
            let mode = try r.int32(), path = try r.string()
            try chmod(mode, path)
        case .lchown:
            let uid = try r.int32(), gid = try r.int32(), path = try r.string()
            try lchown(uid, gid, path)
        case .isDir: w.bool(try isDir(try r.string()))
        }
    }
}
