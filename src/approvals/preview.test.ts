import assert from 'node:assert/strict';
import { test } from 'node:test';
import { changedRows, isPreviewable, previewText } from './preview.ts';

test('statements that may change rows are previewed, after comments and parentheses', () => {
  for (const sql of [
    'UPDATE t SET a = 1',
    ' delete from t',
    'MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE',
    'insert into t select 1',
    '-- why\n/* x */ (WITH d AS (DELETE FROM t RETURNING *) SELECT 1)',
  ]) {
    assert.ok(isPreviewable(sql), sql);
  }
  for (const sql of ['select 1', 'drop table t', 'truncate t', 'vacuum', '/* update */ select 1', '-- delete']) {
    assert.ok(!isPreviewable(sql), sql);
  }
});

test('the rows fed to each ModifyTable, summed; none when the plan changes nothing', () => {
  const scan = (rows: number, relationship = 'Outer') => ({
    'Node Type': 'Seq Scan',
    'Parent Relationship': relationship,
    'Plan Rows': rows,
  });
  assert.equal(changedRows([{ Plan: { 'Node Type': 'ModifyTable', 'Plan Rows': 0, Plans: [scan(1204)] } }]), 1204);
  // Data-modifying CTEs: one ModifyTable each, under whatever reads them.
  const ctes = {
    Plan: {
      'Node Type': 'Aggregate',
      'Plan Rows': 1,
      Plans: [
        { 'Node Type': 'ModifyTable', 'Parent Relationship': 'InitPlan', Plans: [scan(7, 'InitPlan'), scan(30)] },
        { 'Node Type': 'ModifyTable', 'Parent Relationship': 'InitPlan', Plans: [scan(5)] },
        scan(12),
      ],
    },
  };
  assert.equal(changedRows([ctes]), 35);
  assert.equal(changedRows([{ Plan: scan(99) }]), undefined);
  assert.equal(changedRows(undefined), undefined);
});

test('the text reads as a person says it', () => {
  assert.equal(previewText(1204), 'about 1,204 rows would change');
  assert.equal(previewText(1), 'about 1 row would change');
  assert.equal(previewText(0), 'about 0 rows would change');
});
