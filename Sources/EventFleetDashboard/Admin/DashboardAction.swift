import EventFleetCore
import EventFleetJobs
import Foundation

/// An operator's action, read from a form: the same operations as the CLI's `jobs retry`,
/// `jobs purge`, `scale` and `backfill`, through the same library calls.
enum DashboardAction: Sendable, Equatable {
    /// Which dead jobs a retry or a purge addresses.
    enum DeadJobs: Sendable, Equatable {
        case job(Int64)
        case tenant(String)
        /// The dead jobs the dead-jobs page lists for a filter: every dead job when it filters
        /// nothing, a tenant's when it filters the tenant only.
        case filtered(DeadJobsPage.Filter)
    }

    case retry(DeadJobs)
    case purge(DeadJobs)
    /// Changes a tenant's quota on `lanes`; `nil` leaves a value as it is.
    case quota(partition: String, lanes: [JobLane], maxRunning: Int?, weight: Int?, paused: Bool?)
    /// Records a backfill of a tenant's streams, which the leading scheduler walks.
    case backfill(partition: String, projections: [String])

    /// The action's name in its path (`actions/<name>`) and in the audit.
    var name: String {
        switch self {
        case .retry: "retry"
        case .purge: "purge"
        case .quota: "quota"
        case .backfill: "backfill"
        }
    }

    /// The tenant it acts on, if one.
    var partition: String? {
        switch self {
        case .retry(let jobs), .purge(let jobs):
            switch jobs {
            case .job: nil
            case .tenant(let partition): partition
            case .filtered(let filter): filter.tenant
            }
        case .quota(let partition, _, _, _, _), .backfill(let partition, _): partition
        }
    }

    /// Reads the action `name` from a form's fields.
    ///
    /// - Parameter projections: The projection versions' keys a backfill may name.
    /// - Throws: ``DashboardActionError`` naming the field that is missing or wrong.
    init(name: String, form: [String: String], projections: [String]) throws {
        func field(_ key: String) -> String? {
            form[key].flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0.trimmingCharacters(in: .whitespaces) }
        }
        func tenant() throws -> String? {
            guard let partition = field("tenant") else { return nil }
            do {
                try IdentifierValidation.validate(partition, field: "tenant")
            } catch {
                throw DashboardActionError.invalid(field: "tenant", value: partition, reason: "\(error)")
            }
            return partition
        }
        func requiredTenant() throws -> String {
            guard let partition = try tenant() else { throw DashboardActionError.missing(field: "tenant") }
            return partition
        }
        func integer(_ key: String, atLeast minimum: Int) throws -> Int? {
            guard let text = field(key) else { return nil }
            guard let value = Int(text), value >= minimum, value <= Int(Int32.max) else {
                throw DashboardActionError.invalid(field: key, value: text, reason: "not a whole number from \(minimum) to \(Int32.max)")
            }
            return value
        }
        func deadJobs() throws -> DeadJobs {
            if let text = field("job") {
                guard let id = Int64(text), id > 0 else { throw DashboardActionError.invalid(field: "job", value: text, reason: "not a job id") }
                return .job(id)
            }
            if field("scope") == "filtered" {
                return .filtered(DeadJobsPage.Filter(tenant: try tenant(), projection: field("projection"), error: field("error")))
            }
            guard let partition = try tenant() else {
                throw DashboardActionError.missing(field: "job")
            }
            return .tenant(partition)
        }

        switch name {
        case "retry":
            self = .retry(try deadJobs())
        case "purge":
            self = .purge(try deadJobs())
        case "quota":
            let partition = try requiredTenant()
            let lanes: [JobLane]
            switch field("lane") {
            case nil, "both": lanes = JobLane.allCases
            case let text?:
                guard let lane = JobLane(rawValue: text) else {
                    throw DashboardActionError.invalid(field: "lane", value: text, reason: "not a lane (live, backfill or both)")
                }
                lanes = [lane]
            }
            let paused: Bool?
            switch field("paused") {
            case nil: paused = nil
            case "true": paused = true
            case "false": paused = false
            case let text?: throw DashboardActionError.invalid(field: "paused", value: text, reason: "not true or false")
            }
            let (maxRunning, weight) = (try integer("max_running", atLeast: 0), try integer("weight", atLeast: 1))
            guard maxRunning != nil || weight != nil || paused != nil else {
                throw DashboardActionError.missing(field: "max_running")
            }
            self = .quota(partition: partition, lanes: lanes, maxRunning: maxRunning, weight: weight, paused: paused)
        case "backfill":
            let partition = try requiredTenant()
            guard let projection = field("projection") else { throw DashboardActionError.missing(field: "projection") }
            if projection == "all" {
                guard !projections.isEmpty else {
                    throw DashboardActionError.invalid(field: "projection", value: projection, reason: "no projection is registered")
                }
                self = .backfill(partition: partition, projections: projections)
            } else {
                guard projections.contains(projection) else {
                    throw DashboardActionError.invalid(
                        field: "projection", value: projection,
                        reason: "not a registered projection version (\(projections.joined(separator: ", ")))"
                    )
                }
                self = .backfill(partition: partition, projections: [projection])
            }
        default:
            throw DashboardActionError.unknownAction(name)
        }
    }

    /// Takes the action and says what it did.
    func perform(on queue: JobQueue) async throws -> String {
        switch self {
        case .retry(let jobs):
            let count = try await queue.retryDead(try await selection(jobs, on: queue))
            return "\(count) dead job\(count == 1 ? "" : "s") retried"
        case .purge(let jobs):
            let count = try await queue.purgeDead(try await selection(jobs, on: queue))
            return "\(count) dead job\(count == 1 ? "" : "s") purged"
        case .quota(let partition, let lanes, let maxRunning, let weight, let paused):
            for lane in lanes {
                try await queue.setQuota(partition: partition, lane: lane, maxRunning: maxRunning, weight: weight, paused: paused)
            }
            var changes: [String] = []
            if let maxRunning { changes.append("cap \(maxRunning)") }
            if let weight { changes.append("weight \(weight)") }
            if let paused { changes.append(paused ? "paused" : "resumed") }
            return "tenant \(partition) (\(lanes.map(\.rawValue).joined(separator: ", "))): \(changes.joined(separator: ", "))"
        case .backfill(let partition, let projections):
            let id = try await queue.startBackfill(projections: projections, partition: partition)
            return "backfill \(id) of \(projections.joined(separator: ", ")) for tenant \(partition) recorded: the leading scheduler enqueues its jobs"
        }
    }

    /// The library's selection for `jobs`: a filter on projection or error text selects the ids of
    /// the dead jobs the page lists for it.
    private func selection(_ jobs: DeadJobs, on queue: JobQueue) async throws -> DeadJobSelection {
        switch jobs {
        case .job(let id): return .ids([id])
        case .tenant(let partition): return .partition(partition)
        case .filtered(let filter) where filter.projection == nil && filter.error == nil:
            return filter.tenant.map(DeadJobSelection.partition) ?? .all
        case .filtered(let filter):
            let dead = try await queue.deadJobs(partition: filter.tenant, limit: DeadJobsPage.scanned)
            return .ids(dead.filter(filter.matches).map(\.id))
        }
    }
}

/// Why an action's form was refused; nothing was changed.
enum DashboardActionError: Error, CustomStringConvertible, Equatable {
    case missing(field: String)
    case invalid(field: String, value: String, reason: String)
    case unknownAction(String)

    /// The form field at fault.
    var field: String? {
        switch self {
        case .missing(let field), .invalid(let field, _, _): field
        case .unknownAction: nil
        }
    }

    var description: String {
        switch self {
        case .missing(let field): "the field \(field) is missing"
        case .invalid(let field, let value, let reason): "the field \(field) ('\(value)') is wrong: \(reason)"
        case .unknownAction(let name): "there is no action '\(name)' (retry, purge, quota, backfill)"
        }
    }
}
