import Engine
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOPosix

/// The HTTP API: OpenAI's completions, chat completions and models, plus health and metrics.
///
/// ```
/// POST /v1/completions        POST /v1/chat/completions
/// GET  /v1/models             GET  /health        GET /metrics
/// POST /reset_prefix_cache[?flash=true]
/// ```
///
/// Around the routes: API keys (`APIKeyMiddleware`), per-request limits (`RequestLimits`),
/// admission with a bounded queue and fair dispatch (`AdmissionController`), a memory budget for
/// request bodies (`BodyMemoryBudget`) and, on the connections, a cap and read and idle timeouts
/// (`GuardedHTTP1Channel`). Every router and application made from one `OpenAIRoutes` shares them.
public struct OpenAIRoutes: Sendable {
    /// The engine.
    public var service: any GenerationService
    /// The server's settings (limits, keys, timeouts, TLS).
    public var configuration: ServerConfiguration
    /// The name requests must give as `model` and `/v1/models` lists.
    public var servedModelName: String
    /// Where request lines go.
    public var logger: Logger
    /// Runs before each `/metrics` answer, to refresh gauges that are read rather than pushed.
    public var beforeMetricsRender: @Sendable () -> Void
    /// Admission and fair dispatch in front of `service`.
    let admission: AdmissionController
    /// Bytes of request bodies held at once.
    let bodyBudget: BodyMemoryBudget
    /// The open connections.
    let connections: ConnectionRegistry

    /// Every route and the methods it answers, for 405s and the metrics' endpoint names.
    static let allowedMethods: [String: [HTTPRequest.Method]] = [
        "/v1/completions": [.post], "/v1/chat/completions": [.post], "/v1/models": [.get], "/health": [.get], "/metrics": [.get],
        "/reset_prefix_cache": [.post],
    ]

    /// Routes for `service` with `configuration`'s limits; the served name defaults to the
    /// service's own model id.
    public init(
        service: any GenerationService, configuration: ServerConfiguration = ServerConfiguration(), logger: Logger,
        beforeMetricsRender: @escaping @Sendable () -> Void = {}
    ) {
        self.service = service
        self.configuration = configuration
        self.beforeMetricsRender = beforeMetricsRender
        self.servedModelName = configuration.servedModelName ?? service.modelID
        self.logger = logger
        admission = AdmissionController(service: service, limits: configuration.admissionLimits)
        bodyBudget = BodyMemoryBudget(limit: Int(clamping: configuration.maxBodyMemory.bytes))
        connections = ConnectionRegistry(limit: FileDescriptorLimit.connectionCap(configured: configuration.maxConnections, logger: logger))
    }

    /// The router with every route and the middleware (errors, then API keys).
    public func router() -> Router<ServerRequestContext> {
        let router = Router(context: ServerRequestContext.self)
        let metrics = HTTPMetrics()
        router.add(middleware: OpenAIErrorMiddleware(metrics: metrics, logger: logger))
        if !configuration.apiKeys.isEmpty {
            router.add(middleware: APIKeyMiddleware(keys: configuration.apiKeys, publicMetrics: configuration.publicMetrics))
        }
        let decoder = RequestBodyDecoder(maxBodyBytes: Int(clamping: configuration.maxBodySize.bytes), budget: bodyBudget)
        let responder = CompletionResponder(admission: admission, metrics: metrics, logger: logger)
        let service = self.service
        let modelName = servedModelName
        let limits = configuration.requestLimits

        router.post("v1/completions") { request, context in
            let body = try await decoder.decode(CompletionRequest.self, from: request)
            try CompletionPlan.checkSequenceCount(prompts: body.prompts.count, options: body.options, promptParam: "prompt", limits: limits)
            let prompts = try body.prompts.map { prompt throws(OpenAIError) -> [Int] in
                switch prompt {
                case .tokens(let tokens): return tokens
                case .text(let text): return try Self.tokenize(param: "prompt") { try service.encode(text) }
                }
            }
            // `echo` repeats each prompt as sent: its text, or its token ids decoded.
            let texts: [String] =
                body.options.sampling.echo
                ? zip(body.prompts, prompts).map { prompt, tokens -> String in
                    if case .text(let text) = prompt { return text }
                    return service.decode(tokens)
                } : []
            let plan = try CompletionPlan(
                endpoint: .completions, options: body.options, prompts: prompts, promptTexts: texts, promptParam: "prompt",
                service: service, servedModelName: modelName, limits: limits)
            return try await responder.respond(to: plan, whenConnectionCloses: context.whenConnectionCloses)
        }

        router.post("v1/chat/completions") { request, context in
            let body = try await decoder.decode(ChatCompletionRequest.self, from: request)
            try CompletionPlan.checkSequenceCount(prompts: 1, options: body.options, promptParam: "messages", limits: limits)
            let tokens = try Self.tokenize(param: "messages") { try service.encodeChat(body.messages) }
            let plan = try CompletionPlan(
                endpoint: .chatCompletions, options: body.options, prompts: [tokens], promptParam: "messages",
                service: service, servedModelName: modelName, limits: limits)
            return try await responder.respond(to: plan, whenConnectionCloses: context.whenConnectionCloses)
        }

        router.get("v1/models") { _, _ in
            let model = ModelListBody.Model(id: modelName, created: Int(Date().timeIntervalSince1970), maxModelLen: service.maxContextTokens)
            return Self.jsonResponse(ModelListBody(data: [model]))
        }

        // vLLM's name: drops the device's cached prefixes, and with ?flash=true the flash ones.
        router.post("reset_prefix_cache") { request, _ in
            let flash = request.uri.queryParameters.get("flash").map { ["true", "1", "yes"].contains($0.lowercased()) } ?? false
            let dropped = await service.resetPrefixCache(flash: flash)
            return Self.jsonResponse(["device_blocks": dropped.device, "flash_blocks": dropped.flash])
        }

        router.get("health") { _, _ in
            Self.jsonResponse(["status": "ok", "model": modelName])
        }

        let beforeMetricsRender = self.beforeMetricsRender
        router.get("metrics") { _, _ in
            beforeMetricsRender()
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: ServerMetrics.render())))
        }
        return router
    }

    /// The application serving these routes at `address`: HTTP/1.1 on `GuardedHTTP1Channel`s,
    /// over TLS when `configuration` names a certificate and key. `onServerRunning` gets the port
    /// it listens on. `eventLoopThreads` sizes the HTTP event loops (nil: NIO's shared group, one
    /// per core); a server whose model computes on the CPU gives them one thread, so they do not
    /// compete with the compute threads for cores (they only move bytes).
    public func application(
        address: BindAddress, eventLoopThreads: Int? = nil, onServerRunning: @escaping @Sendable (_ port: Int?) -> Void = { _ in }
    ) throws -> some ApplicationProtocol {
        let connections = self.connections
        let idleTimeout = configuration.idleTimeout
        let readTimeout = configuration.requestReadTimeout
        var server = HTTPServerBuilder { responder in
            GuardedHTTP1Channel(responder: responder, registry: connections, idleTimeout: idleTimeout, requestReadTimeout: readTimeout)
        }
        if let tls = try ServerTLS.configuration(certificate: configuration.tlsCertificate, key: configuration.tlsKey) {
            server = try .tls(server, tlsConfiguration: tls)
        }
        return Application(
            router: router(), server: server, configuration: .init(address: address, serverName: "hifc"),
            onServerRunning: { channel in onServerRunning(channel.localAddress?.port) },
            eventLoopGroupProvider: eventLoopThreads.map { .shared(MultiThreadedEventLoopGroup(numberOfThreads: $0)) } ?? .singleton,
            logger: logger)
    }

    /// Tokenizing is the client's text meeting the model's tokenizer or chat template: a failure is
    /// the request's fault (an unknown role, a template that refuses the messages), so a 400.
    private static func tokenize(param: String, _ encode: () throws -> [Int]) throws(OpenAIError) -> [Int] {
        do { return try encode() } catch let error as GenerationError {
            throw OpenAIError(error)
        } catch {
            throw .invalidRequest("The \(param) could not be tokenized: \(error)", param: param, code: "invalid_value")
        }
    }

    private static func jsonResponse(_ value: some Encodable) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: CompletionResponder.json(value)))
    }
}
