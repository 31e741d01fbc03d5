import { classify, initClassifier } from './src/policy/sql/pg-classifier.ts';
await initClassifier();
for (const q of process.argv.slice(2)) console.log(q, '\n  ', JSON.stringify(classify(q)));
