# Renders a BOSH job's templates the way the BOSH CLI and director do, for the tests.
#
#   ruby render_job.rb <job dir> <context.json>
#
# context.json: {"properties": {...the manifest's properties...}, "spec": {...optional...}}.
# Prints one JSON object: {"files": {<destination>: <text>}, "looked_up": [...]} or, when a
# template fails, {"error": {"template", "message"}, "looked_up": [...]}. "looked_up" names
# every property a template asked for, so tests can hold the templates to the spec.
#
# The semantics are BOSH's (bosh-cli templatescompiler/erbrenderer): only properties the
# spec declares reach the templates, each one the manifest's value or else the spec
# default (nil without one); p() raises for a property that is nil and has no default
# argument; if_p() runs its block only when every named property is non-nil.
require 'erb'
require 'json'
require 'yaml'

# Nested hashes as objects (`properties.openstack.auth_url`, `spec.deployment`), as
# the OpenStruct-like objects BOSH gives templates.
class ReadOnlyStruct
  def initialize(hash)
    @values = hash.to_h { |key, value| [key.to_s, self.class.wrap(value)] }
  end

  def self.wrap(value)
    case value
    when Hash then new(value)
    when Array then value.map { |item| wrap(item) }
    else value
    end
  end

  def [](key)
    @values[key.to_s]
  end

  def method_missing(name, *arguments)
    return super unless arguments.empty?

    @values[name.to_s]
  end

  def respond_to_missing?(name, include_private = false)
    @values.key?(name.to_s) || super
  end
end

class MissingProperty < StandardError; end

# The object returned by if_p: decides whether `.else` / `.else_if_p` run.
class ElseBranch
  def initialize(context, taken)
    @context = context
    @taken = taken
  end

  def else
    yield unless @taken
  end

  def else_if_p(*names, &block)
    return self if @taken

    @context.if_p(*names, &block)
  end
end

class TemplateContext
  attr_reader :properties, :spec, :name, :index, :looked_up

  def initialize(job_spec, manifest_properties, instance_spec)
    @values = {}
    (job_spec['properties'] || {}).each do |property, definition|
      given = dig_dotted(manifest_properties, property)
      store_dotted(@values, property, given.nil? ? (definition || {})['default'] : given)
    end
    @properties = ReadOnlyStruct.wrap(@values)
    @name = job_spec['name']
    @index = instance_spec.fetch('index', 0)
    @spec = ReadOnlyStruct.wrap(default_instance_spec.merge(instance_spec))
    @looked_up = []
  end

  def p(names, *default)
    names = Array(names)
    names.each do |property|
      value = lookup(property)
      return value unless value.nil?
    end
    return default.first unless default.empty?

    raise MissingProperty, "Can't find property '#{names.join("', or '")}'"
  end

  def if_p(*names)
    values = names.map { |property| lookup(property) }
    return ElseBranch.new(self, false) if values.any?(&:nil?)

    yield(*values)
    ElseBranch.new(self, true)
  end

  def template_binding
    binding
  end

  private

  def default_instance_spec
    {
      'name' => @name, 'job' => { 'name' => @name }, 'index' => 0,
      'id' => '5c3a1e7b-0d9e-4c2f-9a61-3f1f2b7d8e90', 'az' => 'z1', 'bootstrap' => true,
      'deployment' => 'bosh', 'address' => '10.0.0.6',
      'networks' => { 'default' => { 'ip' => '10.0.0.6' } }
    }
  end

  def lookup(property)
    @looked_up << property
    dig_dotted(@values, property)
  end

  def dig_dotted(hash, property)
    property.split('.').reduce(hash) { |node, key| node.is_a?(Hash) ? node[key] : nil }
  end

  def store_dotted(hash, property, value)
    *parents, last = property.split('.')
    node = parents.reduce(hash) { |child, key| child[key] ||= {} }
    node[last] = value
  end
end

def render_job(job_dir, context)
  job_spec = YAML.safe_load(File.read(File.join(job_dir, 'spec')))
  template_context = TemplateContext.new(job_spec, context.fetch('properties', {}),
                                         context.fetch('spec', {}))
  files = {}
  job_spec.fetch('templates').each do |template, destination|
    source = File.read(File.join(job_dir, 'templates', template))
    erb = ERB.new(source, trim_mode: '-')
    erb.filename = template
    begin
      files[destination] = erb.result(template_context.template_binding)
    rescue StandardError => e
      return { 'error' => { 'template' => template, 'message' => e.message },
               'looked_up' => template_context.looked_up.uniq }
    end
  end
  { 'files' => files, 'looked_up' => template_context.looked_up.uniq }
end

if $PROGRAM_NAME == __FILE__
  job_dir, context_path = ARGV
  puts JSON.dump(render_job(job_dir, JSON.parse(File.read(context_path))))
end
