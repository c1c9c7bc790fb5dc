import ArgumentParser
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetProjections
import Foundation
import Logging

/// Exit codes of the `eventfleet` commands.
public enum EventFleetExitCode {
    /// Anything else: the database is unreachable, a server error.
    public static let failure: Int32 = 1
    /// Invalid input; nothing was written. The message names the bad field.
    public static let invalidInput: Int32 = 2
    /// A version conflict, or a command whose every retry lost one; the message gives the expected
    /// and actual versions.
    public static let versionConflict: Int32 = 3
    /// The append committed, but a projection it waited for did not show it in time (or its job
    /// is dead); the message says how far the projection is.
    public static let projectionNotShown: Int32 = 4
}

/// Runs a root command with EventFleet's exit codes: 0 success, 2 invalid input, 3 version conflict,
/// 1 anything else. Apps that build their own fleet binary call this from their `@main`.
public enum CommandLineRunner {
    /// Logs to standard error at the level in `LOG_LEVEL` (`warning` by default), as the fleet
    /// processes do. Call it once, first thing in `main`.
    public static func bootstrapLogging() {
        let level = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }

    /// Parses the process's arguments (or `arguments`) as `root`'s, runs the command and exits with
    /// its exit code.
    ///
    /// Standard output is line-buffered for every command, so that status lines reach a file or a
    /// pipe (systemd's journal, a Procfile runner) as they are printed, not when the process ends.
    ///
    /// - Parameters:
    ///   - root: The binary's root command, whose subcommands are the commands.
    ///   - arguments: The arguments without the executable's name; `nil` reads the process's.
    public static func main<Root: ParsableCommand>(_ root: Root.Type, arguments: [String]? = nil) async -> Never {
        exit(await run(root, arguments: arguments))
    }

    /// Runs `root` as ``main(_:arguments:)`` does, its commands taking their projections and
    /// migrations from `application` (``FleetApplication/commands``).
    ///
    /// - Parameters:
    ///   - root: The binary's root command.
    ///   - application: The application's projections and migrations.
    ///   - arguments: The arguments without the executable's name; `nil` reads the process's.
    public static func main<Root: ParsableCommand>(_ root: Root.Type, application: FleetApplication, arguments: [String]? = nil) async -> Never {
        exit(await FleetApplication.$current.withValue(application) { await run(root, arguments: arguments) })
    }

    /// Runs the command and returns its exit code.
    private static func run<Root: ParsableCommand>(_ root: Root.Type, arguments: [String]?) async -> Int32 {
        StandardOutput.bufferLines()
        if arguments == nil, let problem = invalidUTF8Argument() {
            FileHandle.standardError.write(Data("error: \(problem); nothing was written\n".utf8))
            return EventFleetExitCode.invalidInput
        }
        do {
            var command = try root.parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            return 0
        } catch {
            return report(error, root: root)
        }
    }

    /// Describes the first process argument that is not valid UTF-8, if any.
    ///
    /// `CommandLine.arguments` repairs such bytes with U+FFFD, so `--data` would be stored altered
    /// without a word; the raw `argv` is checked instead and the command refused.
    static func invalidUTF8Argument() -> String? {
        func argument(_ index: Int) -> String? {
            guard let pointer = CommandLine.unsafeArgv[index] else { return nil }
            let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(pointer).assumingMemoryBound(to: UInt8.self), count: strlen(pointer))
            return String(validating: bytes, as: UTF8.self)
        }
        for index in 1..<max(1, Int(CommandLine.argc)) where argument(index) == nil {
            if index > 1, let option = argument(index - 1), option.hasPrefix("--") {
                return "the value of \(option) is not valid UTF-8"
            }
            return "command-line argument \(index) is not valid UTF-8"
        }
        return nil
    }

    /// The exit code of a store error: invalid input, a version conflict (also one that a command's
    /// every retry lost), an append a projection did not show in time, or a failure.
    static func exitCode(for error: EventStoreError) -> Int32 {
        switch error {
        case .invalidArgument, .invalidJSON, .messageIdConflict: EventFleetExitCode.invalidInput
        case .versionConflict, .retriesExhausted: EventFleetExitCode.versionConflict
        case .projectionNotAwaitable: EventFleetExitCode.invalidInput
        case .projectionTimedOut, .projectionFailed: EventFleetExitCode.projectionNotShown
        default: EventFleetExitCode.failure
        }
    }

    /// Prints `error` to standard error (or help to standard output) and returns the exit code.
    static func report<Root: ParsableCommand>(_ error: any Error, root: Root.Type) -> Int32 {
        let code: Int32
        let message: String
        switch error {
        case let error as EventStoreError:
            message = "error: \(error)"
            code = exitCode(for: error)
        case let error as ConfigurationError:
            message = "error: \(error)"
            code = EventFleetExitCode.invalidInput
        case let error as MigrationError:
            message = "error: \(error)"
            code = EventFleetExitCode.failure
        case let error as ProjectionError:
            message = "error: \(error)"
            switch error {
            case .invalidIdentifier, .unknownProjection, .invalidArgument: code = EventFleetExitCode.invalidInput
            default: code = EventFleetExitCode.failure
            }
        case let error as JobQueueError:
            message = "error: \(error)"
            switch error {
            case .invalidConfiguration: code = EventFleetExitCode.invalidInput
            default: code = EventFleetExitCode.failure
            }
        case let error as MetricsServerError:
            message = "error: \(error)"
            code = EventFleetExitCode.failure
        case let error as ProjectionVersionError:
            // A refusal: nothing was changed, and the operator's input (or a version's state) is why.
            message = "error: \(error)"
            code = EventFleetExitCode.invalidInput
        case let error as LogRebaseError:
            message = "error: \(error)"
            code = EventFleetExitCode.failure
        case let error as ExitCode:
            return error.rawValue
        default:
            let parserCode = root.exitCode(for: error)
            if parserCode == .success {
                print(root.fullMessage(for: error))
                return 0
            }
            message = root.fullMessage(for: error)
            code = parserCode == .validationFailure ? EventFleetExitCode.invalidInput : EventFleetExitCode.failure
        }
        FileHandle.standardError.write(Data((message + "\n").utf8))
        return code
    }
}
