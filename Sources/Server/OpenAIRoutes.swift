import Engine
import Foundation
import Hummingbird
import Logging
import NIOPosix

/// The HTTP API: OpenAI's completions, chat completions and models, plus health and metrics.
///
/// ```
/// POST /v1/completions        POST /v1/chat/completions
/// GET  /v1/models             GET  /health        GET /metrics
/// POST /reset_prefix_cache[?flash=true]
/// ```
public struct OpenAIRoutes: Sendable {
    /// The engine.
    public var service: any GenerationService
    /// The name requests must give as `model` and `/v1/models` lists.
    public var servedModelName: String
    /// Largest request body accepted, in bytes.
    public var maxBodyBytes: Int
    /// Where request lines go.
    public var logger: Logger
    /// Runs before each `/metrics` answer, to refresh gauges that are read rather than pushed.
    public var beforeMetricsRender: @Sendable () -> Void

    /// Routes for `service`; `servedModelName` defaults to the service's own model id.
    public init(
        service: any GenerationService, servedModelName: String? = nil, maxBodyBytes: Int = 4 << 20, logger: Logger,
        beforeMetricsRender: @escaping @Sendable () -> Void = {}
    ) {
        self.service = service
        self.beforeMetricsRender = beforeMetricsRender
        self.servedModelName = servedModelName ?? service.modelID
        self.maxBodyBytes = maxBodyBytes
        self.logger = logger
    }

    /// The router with every route and the error middleware.
    public func router() -> Router<ServerRequestContext> {
        let router = Router(context: ServerRequestContext.self)
        let metrics = HTTPMetrics()
        router.add(middleware: OpenAIErrorMiddleware(metrics: metrics, logger: logger))
        let decoder = RequestBodyDecoder(maxBodyBytes: maxBodyBytes)
        let responder = CompletionResponder(service: service, metrics: metrics, logger: logger)
        let service = self.service
        let modelName = servedModelName

        router.post("v1/completions") { request, context in
            let body = try await decoder.decode(CompletionRequest.self, from: request)
            let prompts = try body.prompts.map { prompt throws(OpenAIError) -> [Int] in
                switch prompt {
                case .tokens(let tokens): return tokens
                case .text(let text): return try Self.tokenize(param: "prompt") { try service.encode(text) }
                }
            }
            let plan = try CompletionPlan(
                endpoint: .completions, options: body.options, prompts: prompts, promptParam: "prompt",
                service: service, servedModelName: modelName)
            return try await responder.respond(to: plan, whenConnectionCloses: context.whenConnectionCloses)
        }

        router.post("v1/chat/completions") { request, context in
            let body = try await decoder.decode(ChatCompletionRequest.self, from: request)
            let tokens = try Self.tokenize(param: "messages") { try service.encodeChat(body.messages) }
            let plan = try CompletionPlan(
                endpoint: .chatCompletions, options: body.options, prompts: [tokens], promptParam: "messages",
                service: service, servedModelName: modelName)
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

    /// The application serving these routes at `address`, its connections watched for clients that
    /// hang up (`ClientHangupHandler`).
    /// `eventLoopThreads` sizes the HTTP event loops (nil: NIO's shared group, one per core); a
    /// server whose model computes on the CPU gives them one thread, so they do not compete with
    /// the compute threads for cores (they only move bytes).
    public func application(
        address: BindAddress, eventLoopThreads: Int? = nil, onServerRunning: @escaping @Sendable () -> Void = {}
    ) -> some ApplicationProtocol {
        Application(
            router: router(), server: .http1(configuration: .init(additionalChannelHandlers: [ClientHangupHandler()])),
            configuration: .init(address: address, serverName: "hifc"),
            onServerRunning: { _ in onServerRunning() },
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
