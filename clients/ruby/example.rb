#!/usr/bin/env ruby
# frozen_string_literal: true

# Calls Dossier's UnderwritingService end to end (the Ruby twin of
# clients/python/example.py):
#
# 1. Prints the server's health (grpc.health.v1).
# 2. EvaluateApplication with a fresh idempotency key and a 30 s deadline; prints the
#    decision, status and every check.
# 3. GetReport for the same application id and checks that it matches.
# 4. ListReports with page_size 5.
#
# Exit code 0 on success; 1 on any RPC error or mismatch; 2 on bad arguments,
# unreadable input or missing generated stubs.
#
# Setup (from the repository root, Debian):
#   apt-get install -y ruby-grpc ruby-grpc-tools libprotobuf-dev
#   clients/ruby/generate.sh
#   ruby clients/ruby/example.rb --addr 127.0.0.1:50051 --file examples/approve.json
#
# The JSON file is the proto3 JSON mapping of dossier.v1.Application.

require 'json'
require 'optparse'
require 'securerandom'
require 'time'

require 'grpc'
require 'grpc/health/v1/health_services_pb'
require 'google/protobuf/well_known_types'

$LOAD_PATH.unshift(File.join(__dir__, 'lib')) # generated dossier/v1 stubs live here
begin
  require 'dossier/v1/application_pb'
  require 'dossier/v1/report_pb'
  require 'dossier/v1/underwriting_service_services_pb'
rescue LoadError => e
  warn "error: generated stubs not found (#{e.message}); run clients/ruby/generate.sh first"
  exit 2
end

module DossierExample
  UNDERWRITING_SERVICE = 'dossier.v1.UnderwritingService'

  # Client-side policy every Dossier caller should have (see docs/clients.md):
  # transparent retries of UNAVAILABLE, which is what a call sees when the server
  # closes its connection (max connection age, rolling deploy) before the call started.
  SERVICE_CONFIG = {
    methodConfig: [
      {
        name: [{ service: UNDERWRITING_SERVICE }, { service: 'dossier.v1.DataService' }],
        retryPolicy: {
          maxAttempts: 4,
          initialBackoff: '0.2s',
          maxBackoff: '2s',
          backoffMultiplier: 2,
          retryableStatusCodes: ['UNAVAILABLE']
        }
      }
    ]
  }.freeze

  CHANNEL_ARGS = {
    'grpc.enable_retries' => 1,
    'grpc.service_config' => JSON.generate(SERVICE_CONFIG),
    # Keepalive: notice a dead connection in ~80 s instead of waiting for TCP.
    'grpc.keepalive_time_ms' => 60_000,
    'grpc.keepalive_timeout_ms' => 20_000
  }.freeze

  # A check of this example failed; the message says why.
  class Failure < StandardError; end

  module_function

  def describe_rpc_error(err)
    code = GRPC::Core::StatusCodes.constants.find { |c| GRPC::Core::StatusCodes.const_get(c) == err.code }
    lines = ["#{code || err.code}: #{err.details}"]
    begin # rich error details (BadRequest field violations, RetryInfo), optional
      require 'google/rpc/error_details_pb'
      status = err.to_rpc_status
      (status ? status.details : []).each do |any|
        if (bad = any.unpack(Google::Rpc::BadRequest))
          bad.field_violations.each { |v| lines << "  field #{v.field}: #{v.description}" }
        elsif (info = any.unpack(Google::Rpc::RetryInfo))
          lines << "  retry after #{info.retry_delay.to_f} s"
        else
          lines << "  detail: #{any.type_url}"
        end
      end
    rescue LoadError, StandardError
      nil # details are a nicety, never the failure
    end
    lines.join("\n")
  end

  # Runs one RPC, turning a GRPC::BadStatus into a Failure naming the method.
  def call(name)
    yield
  rescue GRPC::BadStatus => e
    raise Failure, "#{name} failed: #{describe_rpc_error(e)}"
  end

  def check_health(addr, timeout)
    stub = Grpc::Health::V1::Health::Stub.new(addr, :this_channel_is_insecure, channel_args: CHANNEL_ARGS)
    overall = call('Health.Check') do
      stub.check(Grpc::Health::V1::HealthCheckRequest.new(service: ''), deadline: Time.now + timeout)
    end
    puts "health: server #{overall.status}"
    raise Failure, "server is not serving: #{overall.status}" unless overall.status == :SERVING

    begin
      svc = stub.check(Grpc::Health::V1::HealthCheckRequest.new(service: UNDERWRITING_SERVICE),
                       deadline: Time.now + timeout)
      puts "health: #{UNDERWRITING_SERVICE} #{svc.status}"
      raise Failure, "#{UNDERWRITING_SERVICE} is not serving: #{svc.status}" unless svc.status == :SERVING
    rescue GRPC::NotFound
      puts "health: #{UNDERWRITING_SERVICE} not registered with the health service"
    rescue GRPC::BadStatus => e
      raise Failure, "Health.Check failed: #{describe_rpc_error(e)}"
    end
  end

  def load_application(path)
    text = File.read(path, encoding: 'UTF-8')
    Dossier::V1::Application.decode_json(text)
  rescue SystemCallError => e
    warn "error: cannot read #{path}: #{e.message}"
    exit 2
  rescue Google::Protobuf::ParseError => e
    warn "error: #{path} is not a dossier.v1.Application in proto3 JSON: #{e.message}"
    exit 2
  end

  def print_report(report)
    puts "application: #{report.application_id}"
    puts "status:      #{report.status}"
    puts "decision:    #{report.decision}"
    puts "complete:    #{report.complete}"
    puts "reasons:     #{report.reason_codes.empty? ? '-' : report.reason_codes.to_a.join(', ')}"
    puts "policy:      #{report.policy_version.empty? ? '-' : report.policy_version}"
    puts "checks (#{report.checks.size}):"
    report.checks.each do |c|
      reasons = c.reason_codes.empty? ? '-' : c.reason_codes.to_a.join(',')
      subject = c.subject.empty? ? '' : " [#{c.subject}]"
      puts format('  %-35s %-27s %-30s %s%s', c.kind, c.outcome, reasons, c.message, subject)
    end
  end

  # What must agree between EvaluateApplication's answer and GetReport. Timestamps are
  # left out: the stored copy may be rounded to the database's precision.
  def check_fingerprint(report)
    report.checks.map { |c| [c.kind.to_s, c.subject, c.outcome.to_s, c.reason_codes.to_a.sort] }.sort
  end

  def compare_reports(evaluated, fetched)
    problems = []
    %i[application_id idempotency_key status decision complete policy_version].each do |field|
      a = evaluated.public_send(field)
      b = fetched.public_send(field)
      problems << "#{field}: EvaluateApplication=#{a.inspect} GetReport=#{b.inspect}" unless a == b
    end
    unless evaluated.reason_codes.to_a.sort == fetched.reason_codes.to_a.sort
      problems << "reason_codes: EvaluateApplication=#{evaluated.reason_codes.to_a} " \
                  "GetReport=#{fetched.reason_codes.to_a}"
    end
    unless check_fingerprint(evaluated) == check_fingerprint(fetched)
      problems << "checks differ: EvaluateApplication=#{check_fingerprint(evaluated)} " \
                  "GetReport=#{check_fingerprint(fetched)}"
    end
    return if problems.empty?

    raise Failure, "GetReport does not match EvaluateApplication:\n  #{problems.join("\n  ")}"
  end

  def run(opts)
    application = opts[:health_only] ? nil : load_application(opts[:file])
    check_health(opts[:addr], [opts[:timeout], 5.0].min)
    return if opts[:health_only]

    stub = Dossier::V1::UnderwritingService::Stub.new(opts[:addr], :this_channel_is_insecure,
                                                      channel_args: CHANNEL_ARGS)

    key = "example-rb-#{SecureRandom.uuid}"
    puts "\nEvaluateApplication (idempotency key #{key}, deadline #{opts[:timeout]} s)"
    request = Dossier::V1::EvaluateApplicationRequest.new(idempotency_key: key, application: application)
    evaluated = call('EvaluateApplication') do
      stub.evaluate_application(request, deadline: Time.now + opts[:timeout])
    end.report
    raise Failure, 'EvaluateApplication returned no report' if evaluated.nil?

    print_report(evaluated)
    raise Failure, 'EvaluateApplication returned a report without an application_id' if evaluated.application_id.empty?
    if !evaluated.idempotency_key.empty? && evaluated.idempotency_key != key
      raise Failure, "report carries idempotency key #{evaluated.idempotency_key.inspect}, sent #{key.inspect}"
    end

    puts "\nGetReport #{evaluated.application_id}"
    fetched = call('GetReport') do
      stub.get_report(Dossier::V1::GetReportRequest.new(application_id: evaluated.application_id),
                      deadline: Time.now + 10)
    end.report
    raise Failure, 'GetReport returned no report' if fetched.nil?

    compare_reports(evaluated, fetched)
    puts 'matches the EvaluateApplication answer'

    puts "\nListReports page_size=5"
    listed = call('ListReports') do
      stub.list_reports(Dossier::V1::ListReportsRequest.new(page_size: 5), deadline: Time.now + 10)
    end
    listed.reports.each do |s|
      created = s.create_time ? s.create_time.to_time.utc.iso8601(6) : '-'
      puts format('  %s  %-30s %-20s %s', s.application_id, s.status, s.decision, created)
    end
    raise Failure, 'ListReports returned no reports right after an evaluation' if listed.reports.empty?
    raise Failure, "ListReports returned #{listed.reports.size} reports for page_size 5" if listed.reports.size > 5

    ours = listed.reports.any? { |s| s.application_id == evaluated.application_id }
    puts "  (#{ours ? 'includes' : 'does not include'} #{evaluated.application_id}; " \
         "next_page_token #{listed.next_page_token.empty? ? 'empty' : 'set'})"
  end

  def main(argv)
    opts = { addr: '127.0.0.1:50051', file: nil, timeout: 30.0, health_only: false }
    parser = OptionParser.new do |o|
      o.banner = 'Usage: example.rb [--addr HOST:PORT] --file APPLICATION.json [--timeout SECONDS] [--health-only]'
      o.on('--addr HOST:PORT', "host:port of Dossier's gRPC server (default #{opts[:addr]})") { |v| opts[:addr] = v }
      o.on('--file PATH', 'application JSON (proto3 JSON of dossier.v1.Application)') { |v| opts[:file] = v }
      o.on('--timeout SECONDS', Float, 'deadline of EvaluateApplication (default 30)') { |v| opts[:timeout] = v }
      o.on('--health-only', 'only check health; exit 0 if SERVING') { opts[:health_only] = true }
    end
    begin
      parser.parse!(argv)
    rescue OptionParser::ParseError => e
      warn "error: #{e.message}\n#{parser.banner}"
      return 2
    end
    if !opts[:health_only] && opts[:file].nil?
      warn "error: --file is required (unless --health-only)\n#{parser.banner}"
      return 2
    end

    run(opts)
    0
  rescue Failure => e
    warn "error: #{e.message}"
    1
  end
end

exit DossierExample.main(ARGV) if $PROGRAM_NAME == __FILE__
