// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "EventFleet",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "EventFleetCore", targets: ["EventFleetCore"]),
        .library(name: "EventFleetPostgres", targets: ["EventFleetPostgres"]),
        .library(name: "EventFleetProjections", targets: ["EventFleetProjections"]),
        .library(name: "EventFleetJobs", targets: ["EventFleetJobs"]),
        .library(name: "EventFleetCLI", targets: ["EventFleetCLI"]),
        .library(name: "EventFleetDashboard", targets: ["EventFleetDashboard"]),
        .library(name: "CartsExample", targets: ["CartsExample"]),
        .executable(name: "eventfleet", targets: ["eventfleet"]),
        .executable(name: "eventfleet-demo", targets: ["EventFleetDemo"]),
        .executable(name: "eventfleet-chaos", targets: ["EventFleetChaos"]),
        .executable(name: "eventfleet-bench", targets: ["EventFleetBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        // The web dashboard (EventFleetDashboard only: the library and EventFleetCLI never need it).
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        // `swift package generate-documentation`: the DocC catalogs of the library modules.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin.git", from: "1.5.0"),
    ],
    targets: [
        .target(
            name: "EventFleetCore",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The library's schema: SQL files embedded in the binary (see Migrations/LibrarySchema.swift).
        .target(
            name: "EventFleetMigrations",
            path: "Migrations",
            resources: [.embedInCode("tables"), .embedInCode("routines")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "EventFleetPostgres",
            dependencies: [
                "EventFleetCore",
                "EventFleetMigrations",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "_ConnectionPoolModule", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "EventFleetProjections",
            dependencies: [
                "EventFleetCore",
                "EventFleetPostgres",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "EventFleetJobs",
            dependencies: [
                "EventFleetCore",
                "EventFleetPostgres",
                "EventFleetProjections",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "CartsExample",
            dependencies: [
                "EventFleetCore", "EventFleetPostgres", "EventFleetProjections",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            resources: [.embedInCode("Migrations")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "EventFleetCLI",
            dependencies: [
                "EventFleetCore",
                "EventFleetPostgres",
                "EventFleetProjections",
                "EventFleetJobs",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "EventFleetDashboard",
            dependencies: [
                "EventFleetCore",
                "EventFleetPostgres",
                "EventFleetJobs",
                "EventFleetCLI",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "eventfleet",
            dependencies: [
                "CartsExample",
                "EventFleetCLI",
                "EventFleetDashboard",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "EventFleetDemo",
            dependencies: [
                "CartsExample",
                "EventFleetCLI",
                "EventFleetCore",
                "EventFleetJobs",
                "EventFleetPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "EventFleetChaos",
            dependencies: [
                "CartsExample",
                "EventFleetCLI",
                "EventFleetCore",
                "EventFleetJobs",
                "EventFleetPostgres",
                "EventFleetProjections",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "EventFleetBench",
            dependencies: [
                "CartsExample",
                "EventFleetCLI",
                "EventFleetCore",
                "EventFleetDashboard",
                "EventFleetJobs",
                "EventFleetPostgres",
                "EventFleetProjections",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The README's and the DocC articles' code blocks, compiled as a test target (DocSnippets).
        .executableTarget(name: "DocSnippetExtractor"),
        .plugin(name: "DocSnippets", capability: .buildTool(), dependencies: ["DocSnippetExtractor"]),
        .testTarget(
            name: "DocSnippetTests",
            dependencies: [
                "EventFleetCore",
                "EventFleetPostgres",
                "EventFleetProjections",
                "EventFleetJobs",
                "EventFleetCLI",
                "CartsExample",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings,
            plugins: ["DocSnippets"]
        ),
        .target(
            name: "EventFleetTestSupport",
            dependencies: [
                "EventFleetCLI",
                "EventFleetCore",
                "EventFleetPostgres",
                "CartsExample",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/EventFleetTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EventFleetCoreTests",
            dependencies: ["EventFleetCore", "CartsExample"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EventFleetPostgresTests",
            dependencies: [
                "EventFleetCore",
                "EventFleetPostgres",
                "EventFleetTestSupport",
                "CartsExample",
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "ConsumerFixture",
            dependencies: [
                "EventFleetCore",
                "EventFleetPostgres",
                "EventFleetProjections",
                "CartsExample",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/Fixtures/ConsumerFixture",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EventFleetProjectionsTests",
            dependencies: [
                "EventFleetCLI",
                "EventFleetCore",
                "EventFleetPostgres",
                "EventFleetProjections",
                "EventFleetTestSupport",
                "CartsExample",
                "ConsumerFixture",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EventFleetJobsTests",
            dependencies: [
                "EventFleetCore",
                "EventFleetPostgres",
                "EventFleetProjections",
                "EventFleetJobs",
                "EventFleetTestSupport",
                "CartsExample",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EventFleetDashboardTests",
            dependencies: [
                "EventFleetDashboard",
                "EventFleetCLI",
                "EventFleetCore",
                "EventFleetJobs",
                "EventFleetPostgres",
                "EventFleetTestSupport",
                "CartsExample",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EventFleetCLITests",
            dependencies: [
                "EventFleetTestSupport",
                "eventfleet",
                "EventFleetCore",
                "EventFleetPostgres",
                "EventFleetJobs",
                "CartsExample",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
