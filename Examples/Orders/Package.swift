// swift-tools-version:6.1
// An application built on EventFleet as a user builds one: this package sits beside a checkout of
// EventFleet (`../EventFleet` links to this repository) and depends on it with the lines of the
// README's install section.
import PackageDescription

let package = Package(
    name: "Orders",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "../EventFleet"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        .executableTarget(
            name: "orders-fleet",
            dependencies: [
                .product(name: "EventFleetCore", package: "EventFleet"),
                .product(name: "EventFleetPostgres", package: "EventFleet"),
                .product(name: "EventFleetProjections", package: "EventFleet"),
                .product(name: "EventFleetJobs", package: "EventFleet"),
                .product(name: "EventFleetCLI", package: "EventFleet"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/OrdersFleet",
            swiftSettings: [.enableUpcomingFeature("ExistentialAny")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
