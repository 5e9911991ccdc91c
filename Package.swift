// swift-tools-version: 6.2
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
]

let package = Package(
    name: "multiverse-controller",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "multiverse-controllerd", targets: ["multiverse-controllerd"]),
        .executable(name: "mvctl", targets: ["mvctl"]),
        .library(name: "SDBus", targets: ["SDBus"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        // The only hand-written C: sd-bus vtable entries (C macros) and eventfd.
        .target(
            name: "CSystemd",
            linkerSettings: [.linkedLibrary("systemd")]
        ),
        .systemLibrary(name: "CLibvirt", pkgConfig: "libvirt", providers: [.apt(["libvirt-dev"])]),
        .systemLibrary(name: "CGuestfs", pkgConfig: "libguestfs", providers: [.apt(["libguestfs-dev"])]),
        .systemLibrary(name: "CPolkit", pkgConfig: "polkit-gobject-1", providers: [.apt(["libpolkit-gobject-1-dev"])]),
        .systemLibrary(name: "CLibxml2", pkgConfig: "libxml-2.0", providers: [.apt(["libxml2-dev"])]),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),

        .target(name: "SDBus", dependencies: ["CSystemd"], swiftSettings: strict),
        .target(name: "BlockingThreads", swiftSettings: strict),
        .target(name: "Libvirt", dependencies: ["CLibvirt", "BlockingThreads"], swiftSettings: strict),
        .target(name: "Polkit", dependencies: ["CPolkit", "BlockingThreads"], swiftSettings: strict),
        .target(name: "Guestfs", dependencies: ["CGuestfs"], swiftSettings: strict),
        .target(
            name: "ControllerCore",
            dependencies: [
                "Libvirt", "Polkit", "Guestfs", "BlockingThreads", "CLibxml2", "CCrypto", "CSystemd",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "ControllerBus",
            dependencies: ["SDBus", "ControllerCore", "Guestfs", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "multiverse-controllerd",
            dependencies: [
                "ControllerBus", "ControllerCore", "SDBus", "Guestfs", "CSystemd",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "mvctl",
            dependencies: [
                "SDBus",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "SDBusTests", dependencies: ["SDBus"], swiftSettings: strict),
        .testTarget(name: "ControllerCoreTests", dependencies: ["ControllerCore", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        .testTarget(name: "IntegrationTests", dependencies: ["SDBus"], swiftSettings: strict),
    ]
)
