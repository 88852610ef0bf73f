#!/usr/bin/env ruby
# frozen_string_literal: true

# The underwriter's review flow from Ruby:
#
# 1. EvaluateApplication with an application the rules refer (examples/refer.json).
# 2. ReviewApplication without the underwriter's ID token: refused (UNAUTHENTICATED).
# 3. ReviewApplication with it (`authorization: Bearer <JWT>`): the underwriter
#    approves with a note, and the review names the token's subject.
# 4. Prints the automated decision and the final one side by side, and shows that a
#    second review is refused (FAILED_PRECONDITION).
#
# Usage (after clients/ruby/generate.sh), against `dossier dev`, whose throw-away
# identity provider `dossier dev-token` signs with:
#   ruby clients/ruby/review.rb --addr 127.0.0.1:50051 --file examples/refer.json \
#        --token "$(cargo run --release -- dev-token --subject uw.alice@example.com)"
# The token may also come from DOSSIER_REVIEWER_TOKEN. In production it is the ID token
# the lender's identity provider gave the underwriter at sign-in.
# Exit code 0 on success, 1 on an unexpected RPC result, 2 on bad arguments.

require 'optparse'
require 'securerandom'
require 'grpc'

$LOAD_PATH.unshift(File.join(__dir__, 'lib'))
begin
  require 'dossier/v1/application_pb'
  require 'dossier/v1/report_pb'
  require 'dossier/v1/underwriting_service_services_pb'
rescue LoadError => e
  warn "error: generated stubs not found (#{e.message}); run clients/ruby/generate.sh first"
  exit 2
end

options = { addr: '127.0.0.1:50051', file: 'examples/refer.json', token: ENV.fetch('DOSSIER_REVIEWER_TOKEN', nil) }
OptionParser.new do |o|
  o.on('--addr HOST:PORT') { |v| options[:addr] = v }
  o.on('--file PATH') { |v| options[:file] = v }
  o.on('--token JWT') { |v| options[:token] = v }
end.parse!
if options[:token].nil? || options[:token].empty?
  warn 'error: no reviewer token; pass --token JWT (e.g. from `dossier dev-token --subject ...`) or set DOSSIER_REVIEWER_TOKEN'
  exit 2
end
as_reviewer = { 'authorization' => "Bearer #{options[:token]}" }

begin
  application = Dossier::V1::Application.decode_json(File.read(options[:file]))
rescue StandardError => e
  warn "error: cannot read #{options[:file]}: #{e.message}"
  exit 2
end

stub = Dossier::V1::UnderwritingService::Stub.new(options[:addr], :this_channel_is_insecure)
deadline = -> { Time.now + 30 }

begin
  evaluated = stub.evaluate_application(
    Dossier::V1::EvaluateApplicationRequest.new(idempotency_key: "ruby-review-#{SecureRandom.uuid}",
                                                application: application),
    deadline: deadline.call
  ).report
  puts "evaluated #{evaluated.application_id}: #{evaluated.decision} #{evaluated.reason_codes.to_a.join(', ')}"
  unless evaluated.decision == :DECISION_REFER
    warn "error: expected a REFER to review, got #{evaluated.decision}"
    exit 1
  end

  approve = Dossier::V1::ReviewApplicationRequest.new(
    application_id: evaluated.application_id,
    outcome: :REVIEW_OUTCOME_APPROVE,
    note: 'Trust certificate on file; the applicant is the sole trustee.'
  )
  begin
    stub.review_application(approve, deadline: deadline.call)
    warn 'error: a review without the underwriter\'s token was accepted'
    exit 1
  rescue GRPC::Unauthenticated => e
    puts "review without a token refused as expected: #{e.details}"
  end

  reviewed = stub.review_application(approve, deadline: deadline.call, metadata: as_reviewer).report
  puts "reviewed by #{reviewed.review.reviewer}: automated #{reviewed.decision}, final #{reviewed.final_decision}"
  unless reviewed.decision == :DECISION_REFER && reviewed.final_decision == :DECISION_APPROVED
    warn 'error: the review should stand beside the automated decision'
    exit 1
  end

  begin
    stub.review_application(
      Dossier::V1::ReviewApplicationRequest.new(application_id: evaluated.application_id,
                                                outcome: :REVIEW_OUTCOME_DECLINE,
                                                note: 'second opinion'),
      deadline: deadline.call, metadata: as_reviewer
    )
    warn 'error: a second review was accepted'
    exit 1
  rescue GRPC::FailedPrecondition => e
    puts "second review refused as expected: #{e.details}"
  end
rescue GRPC::BadStatus => e
  warn "error: #{e.class.name.split('::').last} #{e.details}"
  exit 1
end
